"""What every page uses: the session and its user, the CSRF token, rendering, flash messages,
the billing API's paths and the invoice rows of the lists.

(No ``from __future__ import annotations`` here: FastAPI reads the dependencies' annotations.)
"""

import hmac
import secrets
import time
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from billing_portal.domain.i18n import day, language_of, money, translate
from billing_portal.domain.users import User
from billing_portal.ports import ApiError, BillingApi
from billing_portal.service.accounts import AccountPorts

PAGE_SIZE = 50
ROLES = ("Billing", "Tech", "DPO")


class SignInNeededError(Exception):
    """No valid session: the answer is the sign-in page."""


class NotFoundError(Exception):
    """Nothing to show here for this user (404, naming nothing)."""


# --- sessions -----------------------------------------------------------------------


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, given: str) -> None:
    expected = str(request.session.get("csrf", ""))
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise NotFoundError  # a forged or stale form: nothing happens


async def user_or_none(request: Request) -> User | None:
    email = request.session.get("user")
    if not email or float(request.session.get("expires", 0)) < time.time():
        return None
    user = await accounts_of(request).users.get(str(email))
    return None if user is None or user.disabled else user


async def signed_in(request: Request) -> User:
    user = await user_or_none(request)
    if user is None:
        request.session.pop("user", None)
        raise SignInNeededError
    return user


async def customer_user(user: Annotated[User, Depends(signed_in)]) -> User:
    if user.is_operator or user.customer_id is None:
        raise NotFoundError
    return user


async def operator_user(user: Annotated[User, Depends(signed_in)]) -> User:
    if not user.is_operator:
        raise NotFoundError
    return user


Customer = Annotated[User, Depends(customer_user)]
Operator = Annotated[User, Depends(operator_user)]
Anyone = Annotated[User, Depends(signed_in)]
Csrf = Annotated[str, Form()]


def render(
    request: Request,
    template: str,
    user: User | None,
    *,
    status: int = 200,
    fragment: bool = False,
    **context: Any,
) -> HTMLResponse:
    lang = language_of(user.language if user else None, request.headers.get("accept-language"))
    flash = request.session.pop("flash", None)
    values = {
        "request": request,
        "user": user,
        "lang": lang,
        "t": lambda key, **kw: translate(lang, key, **kw),
        "money": lambda amount, currency: money(amount, currency, lang),
        "day": lambda iso: day(iso, lang),
        "csrf": _csrf(request),
        "flash": flash,
        "fragment": fragment,
        "today": date.today().isoformat(),  # noqa: DTZ011 - the date as the user sees it
        **context,
    }
    templates: Jinja2Templates = request.app.state.templates
    response: HTMLResponse = templates.TemplateResponse(
        request, template, values, status_code=status
    )
    return response


def flash(request: Request, kind: str, text: str) -> None:
    request.session["flash"] = {"kind": kind, "text": text}


def accounts_of(request: Request) -> AccountPorts:
    accounts: AccountPorts = request.app.state.accounts
    return accounts


async def send_change(
    api: BillingApi, request: Request, user: User, *, method: str, path: str, body: Any, done: str
) -> None:
    """Send a change to the billing API and flash how it went: the API's reason when it
    refuses the change (409, 422), else ``done``; any other error goes on up."""
    try:
        await api.send_json(user, method, path, body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        flash(request, "error", exc.message())
    else:
        flash(request, "ok", done)


# --- helpers (pure) ------------------------------------------------------------------------


def safe(segment: str) -> str:
    """A path segment as sent to the API: percent-encoded, so ``../`` cannot escape it."""
    from urllib.parse import quote

    return quote(segment, safe="")


def customer_path(user: User, tail: str = "") -> str:
    """The billing API's path of the user's own customer, ``tail`` appended."""
    return f"/v1/customers/{safe(str(user.customer_id))}{tail}"


def invoice_row(item: dict[str, Any]) -> dict[str, Any]:
    """A list row: the API's invoice and whether it shows as paid or overdue."""
    outstanding = Decimal(item["outstanding"]) if item.get("outstanding") is not None else None
    status = str(item["status"])
    today = date.today().isoformat()  # noqa: DTZ011 - as the user sees the day
    overdue = status == "overdue" or (
        status in ("finalized", "partially_paid")
        and outstanding is not None
        and outstanding > 0
        and bool(item.get("due_date"))
        and str(item["due_date"]) < today
    )
    return item | {"paid": status == "paid", "overdue": overdue, "open": bool(outstanding)}
