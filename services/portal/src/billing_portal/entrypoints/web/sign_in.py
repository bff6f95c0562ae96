"""Health, sign-in and sign-out, setting the password from a link, the language of the pages.

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.)
"""

import secrets
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from billing_portal.domain.i18n import language_of, translate
from billing_portal.domain.users import UserError
from billing_portal.entrypoints.web.common import (
    Anyone,
    Csrf,
    accounts_of,
    check_csrf,
    flash,
    render,
    user_or_none,
)
from billing_portal.service import accounts as account_cases
from billing_portal.service import user_audit
from billing_portal.service.accounts import SignInRefusedError
from billing_runtime.audit import AuditTrail


def _now() -> datetime:
    return datetime.now(UTC)


def _browser_language(request: Request) -> str:
    """The language of a page for no one signed in: the browser's."""
    return language_of(None, request.headers.get("accept-language"))


def _health_routes(app: FastAPI) -> None:
    @app.get("/live")
    async def live() -> Response:
        return Response(status_code=204)

    @app.get("/health")
    async def healthy(request: Request) -> Response:
        health = request.app.state.health
        found = await health() if health else {}
        bad = {k: v for k, v in found.items() if v != "ok"}
        return JSONResponse(found or {"status": "ok"}, status_code=503 if bad else 200)


def _sign_in_routes(app: FastAPI) -> None:
    @app.get("/")
    async def home(request: Request) -> Response:
        user = await user_or_none(request)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(
            "/console/report" if user.is_operator else "/invoices", status_code=303
        )

    @app.get("/login")
    async def login_page(request: Request) -> HTMLResponse:
        return render(request, "login.html.j2", None)

    @app.post("/login")
    async def login(
        request: Request,
        csrf: Csrf,
        email: Annotated[str, Form()],
        password: Annotated[str, Form()],
    ) -> Response:
        check_csrf(request, csrf)
        address = request.client.host if request.client else "?"
        try:
            user = await account_cases.sign_in(
                accounts_of(request), email, password, address, _now()
            )
        except SignInRefusedError as exc:
            lang = _browser_language(request)
            error = (
                translate(lang, "slow_down", seconds=exc.wait_seconds)
                if exc.wait_seconds
                else translate(lang, "bad_sign_in")
            )
            return render(request, "login.html.j2", None, status=401, error=error, email=email)
        request.session.clear()  # a new session: nothing carried over from before sign-in
        request.session["user"] = user.email
        request.session["expires"] = time.time() + request.app.state.session_minutes * 60
        request.session["csrf"] = secrets.token_urlsafe(24)
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request, csrf: Csrf) -> Response:
        check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)


def _password_link_routes(app: FastAPI) -> None:
    @app.get("/set-password/{token}")
    async def set_password_page(request: Request, token: str) -> HTMLResponse:
        try:
            user = await account_cases.link_user(accounts_of(request), token, _now())
        except UserError:
            return render(request, "set_password.html.j2", None, status=404, bad_link=True)
        return render(request, "set_password.html.j2", None, token=token, email=user.email)

    @app.post("/set-password/{token}")
    async def set_password(
        request: Request, token: str, csrf: Csrf, password: Annotated[str, Form()]
    ) -> Response:
        check_csrf(request, csrf)
        try:
            before = await account_cases.link_user(accounts_of(request), token, _now())
            user = await account_cases.set_password(accounts_of(request), token, password, _now())
        except account_cases.LinkError:
            return render(request, "set_password.html.j2", None, status=404, bad_link=True)
        except UserError as exc:
            return render(
                request, "set_password.html.j2", None, status=422, token=token, error=str(exc)
            )
        trail: AuditTrail | None = request.app.state.audit
        if trail is not None:
            digest = before.link_digest or ""
            audit_id, entry = user_audit.password_set(user, digest, before, f"user:{user.email}")
            await trail.record(entry, audit_id=audit_id)
        flash(request, "ok", translate(_browser_language(request), "password_set"))
        return RedirectResponse("/login", status_code=303)


def _language_routes(app: FastAPI) -> None:
    @app.post("/language")
    async def change_language(
        request: Request, user: Anyone, csrf: Csrf, language: Annotated[str, Form()]
    ) -> Response:
        check_csrf(request, csrf)
        await account_cases.set_language(accounts_of(request), user, language)
        back = request.headers.get("referer", "/")
        return RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)


ROUTES = (_health_routes, _sign_in_routes, _password_link_routes, _language_routes)
"""The route builders of this area, in the order their routes are matched."""
