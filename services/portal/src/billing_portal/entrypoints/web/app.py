"""The portal's app: templates, static files, security headers, the session, the error pages and
the routes of every area.

(No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.)
"""

from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from billing_portal.domain.users import LANGUAGES
from billing_portal.entrypoints.web import account, console, console_invoices, panel, sign_in
from billing_portal.entrypoints.web.common import (
    ROLES,
    NotFoundError,
    SignInNeededError,
    render,
    user_or_none,
)
from billing_portal.ports import ApiError, BillingApi
from billing_portal.service.accounts import AccountPorts
from billing_runtime.audit import AuditTrail

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


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
    app.middleware("http")(security_headers)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_key,
        session_cookie="billing_portal_session",
        max_age=session_minutes * 60,
        same_site="lax",
        https_only=secure_cookies,
    )
    _error_pages(app)
    for build_sign_in in sign_in.ROUTES:
        build_sign_in(app)
    for build in (*panel.ROUTES, *account.ROUTES, *console.ROUTES, *console_invoices.ROUTES):
        build(app, api)
    return app


async def security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Every answer: the Content-Security-Policy, no sniffing, no framing; pages not cached."""
    answer = await call_next(request)
    answer.headers["Content-Security-Policy"] = CSP
    answer.headers["X-Content-Type-Options"] = "nosniff"
    answer.headers["Referrer-Policy"] = "same-origin"
    answer.headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static/"):
        answer.headers["Cache-Control"] = "no-store"
    return answer


def _error_pages(app: FastAPI) -> None:
    @app.exception_handler(SignInNeededError)
    async def to_sign_in(request: Request, exc: SignInNeededError) -> Response:
        del exc
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        del exc
        return render(request, "error.html.j2", None, status=404, message="not_found")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        user = await user_or_none(request)
        if exc.status in (403, 404):
            return render(request, "error.html.j2", user, status=404, message="not_found")
        return render(
            request, "error.html.j2", user, status=502 if exc.status >= 500 else 400,
            detail=exc.message(),
        )  # fmt: skip
