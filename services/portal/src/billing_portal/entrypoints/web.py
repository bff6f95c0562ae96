"""HTTP entrypoint: the portal's pages (customer panel and operator console), server-rendered.

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.)

Routes decode the form or query, call the billing API as the signed-in user (the API decides
what that user may see: another customer's invoice answers 404 there, and so here) or an
account use case, and render a template. Sessions are signed cookies (HttpOnly, SameSite=Lax,
Secure outside local development) holding the user's email, a CSRF token and an absolute
expiry; every form that changes something carries the CSRF token. Every answer carries a
Content-Security-Policy without inline scripts, and pages are never cached.
"""

import hmac
import io
import secrets
import time
import zipfile
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from billing_portal.domain.i18n import day, language_of, money, translate
from billing_portal.domain.users import LANGUAGES, User, UserError
from billing_portal.ports import ApiError, BillingApi
from billing_portal.service import accounts as account_cases
from billing_portal.service import user_audit
from billing_portal.service.accounts import AccountPorts, SignInRefusedError
from billing_runtime.audit import AuditTrail

PAGE_SIZE = 50
ROLES = ("Billing", "Tech", "DPO")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


class SignInNeededError(Exception):
    """No valid session: the answer is the sign-in page."""


class NotFoundError(Exception):
    """Nothing to show here for this user (404, naming nothing)."""


def _now() -> datetime:
    return datetime.now(UTC)


def portal_app(
    *,
    accounts: AccountPorts,
    api: BillingApi,
    session_key: str,
    secure_cookies: bool,
    session_minutes: int = 480,
    health: Callable[[], Awaitable[dict[str, str]]] | None = None,
    audit: AuditTrail | None = None,
) -> FastAPI:
    """The portal's pages over the account use cases and the billing API; changes to users
    made here (a password set) are recorded in ``audit`` when given."""
    app = FastAPI(title="billing portal", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(files("billing_portal") / "templates"))
    templates.env.globals["roles"] = ROLES
    templates.env.globals["languages"] = LANGUAGES
    app.state.templates = templates
    app.state.accounts = accounts
    app.state.api = api
    app.state.session_minutes = session_minutes
    app.state.health = health
    app.state.audit = audit
    app.mount(
        "/static", StaticFiles(directory=str(files("billing_portal") / "static")), name="static"
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        answer = await call_next(request)
        answer.headers["Content-Security-Policy"] = CSP
        answer.headers["X-Content-Type-Options"] = "nosniff"
        answer.headers["Referrer-Policy"] = "same-origin"
        answer.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            answer.headers["Cache-Control"] = "no-store"
        return answer

    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key,
        session_cookie="billing_portal_session",
        max_age=session_minutes * 60,
        same_site="lax",
        https_only=secure_cookies,
    )

    @app.exception_handler(SignInNeededError)
    async def to_sign_in(request: Request, exc: SignInNeededError) -> Response:
        del exc
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        del exc
        return _page(request, "error.html.j2", None, status=404, message="not_found")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        user = await _user_or_none(request)
        if exc.status in (403, 404):
            return _page(request, "error.html.j2", user, status=404, message="not_found")
        return _page(
            request, "error.html.j2", user, status=502 if exc.status >= 500 else 400,
            detail=exc.message(),
        )  # fmt: skip

    _sign_in_routes(app)
    _panel_routes(app)
    _account_routes(app)
    _console_routes(app)
    _console_invoice_routes(app)
    return app


# --- sessions -----------------------------------------------------------------------


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def _check_csrf(request: Request, given: str) -> None:
    expected = str(request.session.get("csrf", ""))
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise NotFoundError  # a forged or stale form: nothing happens


async def _user_or_none(request: Request) -> User | None:
    email = request.session.get("user")
    if not email or float(request.session.get("expires", 0)) < time.time():
        return None
    user = await _accounts(request).users.get(str(email))
    return None if user is None or user.disabled else user


async def signed_in(request: Request) -> User:
    user = await _user_or_none(request)
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


def _page(
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


def _flash(request: Request, kind: str, text: str) -> None:
    request.session["flash"] = {"kind": kind, "text": text}


def _accounts(request: Request) -> AccountPorts:
    accounts: AccountPorts = request.app.state.accounts
    return accounts


def _sign_in_routes(app: FastAPI) -> None:
    # --- health, sign-in, sign-out, set password ------------------------------------------

    @app.get("/live")
    async def live() -> Response:
        return Response(status_code=204)

    @app.get("/health")
    async def healthy(request: Request) -> Response:
        health = request.app.state.health
        found = await health() if health else {}
        bad = {k: v for k, v in found.items() if v != "ok"}
        return JSONResponse(found or {"status": "ok"}, status_code=503 if bad else 200)

    @app.get("/")
    async def home(request: Request) -> Response:
        user = await _user_or_none(request)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(
            "/console/report" if user.is_operator else "/invoices", status_code=303
        )

    @app.get("/login")
    async def login_page(request: Request) -> HTMLResponse:
        return _page(request, "login.html.j2", None)

    @app.post("/login")
    async def login(
        request: Request,
        csrf: Csrf,
        email: Annotated[str, Form()],
        password: Annotated[str, Form()],
    ) -> Response:
        _check_csrf(request, csrf)
        address = request.client.host if request.client else "?"
        try:
            user = await account_cases.sign_in(_accounts(request), email, password, address, _now())
        except SignInRefusedError as exc:
            lang = language_of(None, request.headers.get("accept-language"))
            error = (
                translate(lang, "slow_down", seconds=exc.wait_seconds)
                if exc.wait_seconds
                else translate(lang, "bad_sign_in")
            )
            return _page(request, "login.html.j2", None, status=401, error=error, email=email)
        request.session.clear()  # a new session: nothing carried over from before sign-in
        request.session["user"] = user.email
        request.session["expires"] = time.time() + request.app.state.session_minutes * 60
        request.session["csrf"] = secrets.token_urlsafe(24)
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request, csrf: Csrf) -> Response:
        _check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/set-password/{token}")
    async def set_password_page(request: Request, token: str) -> HTMLResponse:
        try:
            user = await account_cases.link_user(_accounts(request), token, _now())
        except UserError:
            return _page(request, "set_password.html.j2", None, status=404, bad_link=True)
        return _page(request, "set_password.html.j2", None, token=token, email=user.email)

    @app.post("/set-password/{token}")
    async def set_password(
        request: Request, token: str, csrf: Csrf, password: Annotated[str, Form()]
    ) -> Response:
        _check_csrf(request, csrf)
        try:
            before = await account_cases.link_user(_accounts(request), token, _now())
            user = await account_cases.set_password(_accounts(request), token, password, _now())
        except account_cases.LinkError:
            return _page(request, "set_password.html.j2", None, status=404, bad_link=True)
        except UserError as exc:
            return _page(
                request, "set_password.html.j2", None, status=422, token=token, error=str(exc)
            )
        trail: AuditTrail | None = request.app.state.audit
        if trail is not None:
            digest = before.link_digest or ""
            audit_id, entry = user_audit.password_set(user, digest, before, f"user:{user.email}")
            await trail.record(entry, audit_id=audit_id)
        lang = language_of(None, request.headers.get("accept-language"))
        _flash(request, "ok", translate(lang, "password_set"))
        return RedirectResponse("/login", status_code=303)

    @app.post("/language")
    async def change_language(
        request: Request, user: Anyone, csrf: Csrf, language: Annotated[str, Form()]
    ) -> Response:
        _check_csrf(request, csrf)
        await account_cases.set_language(_accounts(request), user, language)
        back = request.headers.get("referer", "/")
        return RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)


def _panel_routes(app: FastAPI) -> None:
    api: BillingApi = app.state.api

    # --- customer panel -------------------------------------------------------------------

    @app.get("/invoices")
    async def invoice_list(
        request: Request, user: Customer, page: Annotated[int, Query(ge=1, le=20_000)] = 1
    ) -> HTMLResponse:
        # one call: the page and, after the first, the last invoice of the page before, whose
        # date bounds the credit notes shown here (they go on the page whose invoices' dates
        # surround theirs)
        before = 1 if page > 1 else 0
        found = await api.get_json(
            user,
            "/v1/invoices",
            {"offset": str((page - 1) * PAGE_SIZE - before), "limit": str(PAGE_SIZE + before)},
        )
        newest = found["items"][0].get("issue_date") if before and found["items"] else None
        items = found["items"][before:]
        invoices = [_row(i) for i in items if i.get("number")]
        has_next = found["next_offset"] is not None
        oldest = min((str(r["issue_date"]) for r in invoices if r.get("issue_date")), default=None)
        notes = await api.get_json(
            user, f"/v1/customers/{_safe(str(user.customer_id))}/credit-notes"
        )
        rows = invoices + [
            _credit_note_row(n)
            for n in notes
            if (newest is None or n["issue_date"] < newest)
            and (not has_next or oldest is None or n["issue_date"] >= oldest)
        ]
        rows.sort(key=lambda r: str(r.get("issue_date") or ""), reverse=True)
        return _page(request, "invoices.html.j2", user, rows=rows, page=page, has_next=has_next)

    @app.get("/invoices/{number}/pdf")
    async def invoice_pdf(
        user: Anyone, number: str, download: Annotated[bool, Query()] = False
    ) -> Response:
        content, _, name = await api.get_file(user, f"/v1/invoices/{_safe(number)}/pdf")
        how = "attachment" if download else "inline"
        return Response(
            content,
            media_type="application/pdf",
            headers={"Content-Disposition": f'{how}; filename="{name}"'},
        )

    @app.get("/invoices/{number}/csv")
    async def invoice_csv(user: Anyone, number: str) -> Response:
        content, _, name = await api.get_file(user, f"/v1/invoices/{_safe(number)}/csv")
        return Response(
            content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.post("/invoices/zip")
    async def invoices_zip(
        request: Request,
        user: Customer,
        csrf: Csrf,
        numbers: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        _check_csrf(request, csrf)
        if not numbers:
            lang = language_of(user.language)
            _flash(request, "error", translate(lang, "none_selected"))
            return RedirectResponse("/invoices", status_code=303)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for number in sorted(set(numbers))[:PAGE_SIZE]:
                content, _, name = await api.get_file(user, f"/v1/invoices/{_safe(number)}/pdf")
                archive.writestr(name, content)
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="invoices.zip"'},
        )

    @app.get("/invoices/{number}/pay")
    async def pay_page(request: Request, user: Anyone, number: str) -> HTMLResponse:
        dues = await api.get_json(user, f"/v1/invoices/{_safe(number)}/dues")
        fragment = request.headers.get("x-fragment") == "1"  # the pop-up's content only
        template = "pay_fragment.html.j2" if fragment else "pay.html.j2"
        return _page(request, template, user, dues=dues)

    @app.get("/usage")
    async def usage_page(request: Request, user: Customer) -> HTMLResponse:
        drafts = await api.get_json(
            user,
            "/v1/invoices",
            {"status": "draft", "limit": "1", "customer": str(user.customer_id)},
        )
        draft = None
        services: list[dict[str, Any]] = []
        if drafts["items"]:
            draft = await api.get_json(
                user, f"/v1/invoices/{_safe(drafts['items'][0]['invoice_id'])}"
            )
            services = _by_service(draft.get("draft_lines") or [])
        return _page(request, "usage.html.j2", user, draft=draft, services=services)


def _account_routes(app: FastAPI) -> None:
    api: BillingApi = app.state.api

    @app.get("/account")
    async def account_page(
        request: Request, user: Customer, tab: Annotated[str, Query()] = "info"
    ) -> HTMLResponse:
        cid = _safe(str(user.customer_id))
        customer = await api.get_json(user, f"/v1/customers/{cid}")
        contacts = await api.get_json(user, f"/v1/customers/{cid}/contacts")
        tab = tab if tab in ("info", "contact", "settings") else "info"
        return _page(
            request, "account.html.j2", user, customer=customer, contacts=contacts, tab=tab
        )

    async def _contact_change(
        request: Request, user: User, method: str, path: str, body: Any
    ) -> Response:
        lang = language_of(user.language)
        try:
            await api.send_json(user, method, path, body)
        except ApiError as exc:
            if exc.status not in (409, 422):
                raise
            _flash(request, "error", exc.message())
        else:
            _flash(request, "ok", translate(lang, "saved") + " " + translate(lang, "from_next"))
        return RedirectResponse("/account?tab=contact", status_code=303)

    @app.post("/account/contacts")
    async def add_contact(
        request: Request,
        user: Customer,
        csrf: Csrf,
        email: Annotated[str, Form()],
        roles: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        _check_csrf(request, csrf)
        body = {"email": email.strip(), "roles": [r for r in roles or [] if r in ROLES]}
        path = f"/v1/customers/{_safe(str(user.customer_id))}/contacts"
        return await _contact_change(request, user, "POST", path, body)

    @app.post("/account/contacts/{contact_id}")
    async def change_contact(
        request: Request,
        user: Customer,
        contact_id: str,
        csrf: Csrf,
        roles: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        _check_csrf(request, csrf)
        body = {"roles": [r for r in roles or [] if r in ROLES]}
        path = f"/v1/customers/{_safe(str(user.customer_id))}/contacts/{_safe(contact_id)}"
        return await _contact_change(request, user, "PATCH", path, body)

    @app.post("/account/contacts/{contact_id}/delete")
    async def delete_contact(
        request: Request, user: Customer, contact_id: str, csrf: Csrf
    ) -> Response:
        _check_csrf(request, csrf)
        path = f"/v1/customers/{_safe(str(user.customer_id))}/contacts/{_safe(contact_id)}"
        return await _contact_change(request, user, "DELETE", path, None)

    @app.post("/account/settings")
    async def change_settings(
        request: Request, user: Customer, csrf: Csrf, language: Annotated[str, Form()]
    ) -> Response:
        _check_csrf(request, csrf)
        path = f"/v1/customers/{_safe(str(user.customer_id))}/settings"
        await api.send_json(user, "PATCH", path, {"language": language})
        lang = language_of(user.language)
        _flash(request, "ok", translate(lang, "saved") + " " + translate(lang, "from_next"))
        return RedirectResponse("/account?tab=settings", status_code=303)


def _console_routes(app: FastAPI) -> None:
    api: BillingApi = app.state.api

    # --- operator console -----------------------------------------------------------------

    @app.get("/console")
    async def console(user: Operator) -> Response:
        del user
        return RedirectResponse("/console/report", status_code=303)

    @app.get("/console/report")
    async def report_page(
        request: Request, user: Operator, period: Annotated[str | None, Query()] = None
    ) -> HTMLResponse:
        period = _period(period)
        report = await api.get_json(user, "/v1/reports/margin", {"period": period})
        try:
            bills, bills_error = await api.bills(user, period), None
        except ApiError as exc:
            bills, bills_error = [], exc.message()
        return _page(
            request,
            "console_report.html.j2",
            user,
            period=period,
            customers=_margin_by_customer(report["rows"]),
            bills=bills,
            bills_error=bills_error,
        )

    @app.get("/console/generate")
    async def generate_page(
        request: Request, user: Operator, period: Annotated[str | None, Query()] = None
    ) -> HTMLResponse:
        period = _period(period)
        found = await api.send_json(user, "POST", f"/v1/periods/{period}/close", {"dry_run": True})
        return _page(
            request, "console_generate.html.j2", user, period=period, preview=found["preview"]
        )

    @app.post("/console/generate")
    async def generate(
        request: Request,
        user: Operator,
        csrf: Csrf,
        period: Annotated[str, Form()],
        confirmed: Annotated[str, Form()] = "",
    ) -> Response:
        _check_csrf(request, csrf)
        period = _period(period)
        if confirmed != "yes":
            return _page(request, "console_confirm_generate.html.j2", user, period=period)
        await api.send_json(user, "POST", f"/v1/periods/{period}/close", {})
        return RedirectResponse(f"/console/generate/outcome?period={period}", status_code=303)

    @app.get("/console/generate/outcome")
    async def generate_outcome(
        request: Request, user: Operator, period: Annotated[str, Query()]
    ) -> HTMLResponse:
        period = _period(period)
        found = await api.get_json(user, "/v1/invoices", {"period": period, "limit": "500"})
        items = found["items"]
        pending = any(not i.get("number") for i in items)
        return _page(
            request,
            "console_outcome.html.j2",
            user,
            period=period,
            items=items,
            pending=pending,
        )


def _console_invoice_routes(app: FastAPI) -> None:
    api: BillingApi = app.state.api

    @app.get("/console/invoices")
    async def console_invoices(
        *,
        request: Request,
        user: Operator,
        customer: Annotated[str, Query()] = "",
        period: Annotated[str, Query()] = "",
        status: Annotated[str, Query()] = "",
        adjusted: Annotated[str, Query()] = "",
        min_total: Annotated[str, Query()] = "",
        max_total: Annotated[str, Query()] = "",
        page: Annotated[int, Query(ge=1, le=20_000)] = 1,
    ) -> HTMLResponse:
        wanted = {
            "customer": customer.strip(),
            "period": period.strip(),
            "status": status,
            "adjusted": adjusted if adjusted in ("true", "false") else "",
            "min_total": _amount(min_total),
            "max_total": _amount(max_total),
        }
        params = {k: v for k, v in wanted.items() if v}
        found = await api.get_json(
            user,
            "/v1/invoices",
            params | {"offset": str((page - 1) * PAGE_SIZE), "limit": str(PAGE_SIZE)},
        )
        return _page(
            request,
            "console_invoices.html.j2",
            user,
            wanted=wanted,
            rows=[_row(i) for i in found["items"]],
            page=page,
            has_next=found["next_offset"] is not None,
            query="&".join(f"{k}={v}" for k, v in params.items()),
        )

    @app.get("/console/invoices/{number}")
    async def console_invoice(request: Request, user: Operator, number: str) -> HTMLResponse:
        invoice = await api.get_json(user, f"/v1/invoices/{_safe(number)}")
        dues = None
        if invoice.get("number") and invoice.get("document"):
            dues = await api.get_json(user, f"/v1/invoices/{_safe(number)}/dues")
        return _page(request, "console_invoice.html.j2", user, invoice=invoice, dues=dues)

    @app.post("/console/invoices/{number}/{action}")
    async def console_change(
        *,
        request: Request,
        user: Operator,
        number: str,
        action: str,
        csrf: Csrf,
        amount: Annotated[str, Form()] = "",
        method: Annotated[str, Form()] = "",
        reference: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        confirmed: Annotated[str, Form()] = "",
    ) -> Response:
        _check_csrf(request, csrf)
        if action not in ("payment", "credit", "void"):
            raise NotFoundError
        back = f"/console/invoices/{_safe(number)}"
        fields = {"amount": amount, "method": method, "reference": reference, "reason": reason}
        if confirmed != "yes":
            dues = await api.get_json(user, f"/v1/invoices/{_safe(number)}/dues")
            return _page(
                request, "console_confirm.html.j2", user, number=number, action=action,
                fields=fields, dues=dues,
            )  # fmt: skip
        path, body = {
            "payment": (
                "payments",
                {"amount": _amount(amount), "method": method, "reference": reference},
            ),
            "credit": ("credit-notes", {"amount": _amount(amount), "reason": reason}),
            "void": ("void", {"reason": reason}),
        }[action]
        lang = language_of(user.language)
        try:
            await api.send_json(user, "POST", f"/v1/invoices/{_safe(number)}/{path}", body)
        except ApiError as exc:
            if exc.status not in (409, 422):
                raise
            _flash(request, "error", exc.message())
        else:
            _flash(request, "ok", translate(lang, "done"))
        return RedirectResponse(back, status_code=303)


# --- helpers (pure) ------------------------------------------------------------------------


def _safe(segment: str) -> str:
    """A path segment as sent to the API: percent-encoded, so ``../`` cannot escape it."""
    from urllib.parse import quote

    return quote(segment, safe="")


def _period(period: str | None) -> str:
    """The period asked, or last month when none (or a malformed one) is given."""
    if period and len(period) == 7 and period[4] == "-" and period.replace("-", "").isdigit():
        return period
    today = date.today()  # noqa: DTZ011 - the operator's month
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def _amount(text: str) -> str:
    """A decimal string from a form field ('' when it is not a number; ``,`` accepted)."""
    cleaned = text.strip().replace(" ", "").replace(",", ".")
    try:
        return str(Decimal(cleaned)) if cleaned else ""
    except InvalidOperation:
        return ""


def _row(item: dict[str, Any]) -> dict[str, Any]:
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


def _credit_note_row(note: dict[str, Any]) -> dict[str, Any]:
    """A credit note as a row of the customer's list: what it credits, shown negative."""
    return {
        "credit_note": True,
        "number": note["number"],
        "invoice_number": note["invoice_number"],
        "currency": note["currency"],
        "outstanding": str(-Decimal(note["amount"])),
        "issue_date": note["issue_date"],
        "due_date": None,
        "status": "credit_note",
        "paid": False,
        "overdue": False,
        "open": False,
    }


def _by_service(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A draft's lines summed per provider and service, largest first."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        sums[(line["provider"], line["service_name"])] += Decimal(line["price"])
    return [
        {"provider": p, "service_name": s, "price": str(v)}
        for (p, s), v in sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _margin_by_customer(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The margin report's rows per customer (and currency) with their sums, and the sums per
    provider for the drill-down by provider, then service."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[(row["customer_id"], row["currency"])].append(row)
    customers = []
    for (cid, currency), services in sorted(grouped.items()):
        cost = sum((Decimal(r["cost_converted"]) for r in services), Decimal(0))
        price = sum((Decimal(r["price"]) for r in services), Decimal(0))
        margin = price - cost
        providers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in services:
            providers[str(row.get("provider") or "")].append(row)
        customers.append(
            {
                "customer_id": cid,
                "currency": currency,
                "cost": str(cost),
                "price": str(price),
                "margin": str(margin),
                "margin_percent": None
                if price == 0
                else str((margin * 100 / price).quantize(Decimal("0.01"))),
                "services": services,
                "providers": [
                    {
                        "provider": name,
                        "cost": str(sum((Decimal(r["cost_converted"]) for r in its), Decimal(0))),
                        "price": str(sum((Decimal(r["price"]) for r in its), Decimal(0))),
                        "margin": str(sum((Decimal(r["margin"]) for r in its), Decimal(0))),
                        "services": its,
                    }
                    for name, its in sorted(providers.items())
                ],
            }
        )
    return customers
