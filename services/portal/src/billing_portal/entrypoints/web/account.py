"""The customer's account settings: Customer Info, the contacts and their roles, the language
of the next invoices and emails.

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.)
"""

from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from billing_portal.domain.i18n import language_of, translate
from billing_portal.domain.users import User
from billing_portal.entrypoints.web.common import (
    ROLES,
    Csrf,
    Customer,
    check_csrf,
    customer_path,
    flash,
    render,
    safe,
    send_change,
)
from billing_portal.ports import BillingApi


def _saved(user: User) -> str:
    """What a saved change of the account says: it applies from the next invoice on."""
    lang = language_of(user.language)
    return translate(lang, "saved") + " " + translate(lang, "from_next")


def _account_page_routes(app: FastAPI, api: BillingApi) -> None:
    @app.get("/account")
    async def account_page(
        request: Request, user: Customer, tab: Annotated[str, Query()] = "info"
    ) -> HTMLResponse:
        customer = await api.get_json(user, customer_path(user))
        contacts = await api.get_json(user, customer_path(user, "/contacts"))
        tab = tab if tab in ("info", "contact", "settings") else "info"
        return render(
            request, "account.html.j2", user, customer=customer, contacts=contacts, tab=tab
        )


def _contact_routes(app: FastAPI, api: BillingApi) -> None:
    async def _contact_change(
        request: Request, user: User, method: str, path: str, body: Any
    ) -> Response:
        await send_change(
            api, request, user, method=method, path=path, body=body, done=_saved(user)
        )
        return RedirectResponse("/account?tab=contact", status_code=303)

    @app.post("/account/contacts")
    async def add_contact(
        request: Request,
        user: Customer,
        csrf: Csrf,
        email: Annotated[str, Form()],
        roles: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        check_csrf(request, csrf)
        body = {"email": email.strip(), "roles": [r for r in roles or [] if r in ROLES]}
        return await _contact_change(request, user, "POST", customer_path(user, "/contacts"), body)

    @app.post("/account/contacts/{contact_id}")
    async def change_contact(
        request: Request,
        user: Customer,
        contact_id: str,
        csrf: Csrf,
        roles: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        check_csrf(request, csrf)
        body = {"roles": [r for r in roles or [] if r in ROLES]}
        path = customer_path(user, f"/contacts/{safe(contact_id)}")
        return await _contact_change(request, user, "PATCH", path, body)

    @app.post("/account/contacts/{contact_id}/delete")
    async def delete_contact(
        request: Request, user: Customer, contact_id: str, csrf: Csrf
    ) -> Response:
        check_csrf(request, csrf)
        path = customer_path(user, f"/contacts/{safe(contact_id)}")
        return await _contact_change(request, user, "DELETE", path, None)


def _settings_routes(app: FastAPI, api: BillingApi) -> None:
    @app.post("/account/settings")
    async def change_settings(
        request: Request, user: Customer, csrf: Csrf, language: Annotated[str, Form()]
    ) -> Response:
        check_csrf(request, csrf)
        await api.send_json(user, "PATCH", customer_path(user, "/settings"), {"language": language})
        flash(request, "ok", _saved(user))
        return RedirectResponse("/account?tab=settings", status_code=303)


ROUTES = (_account_page_routes, _contact_routes, _settings_routes)
"""The route builders of this area, in the order their routes are matched."""
