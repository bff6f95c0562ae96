"""The operator console's customer invoices: the filtered list, one invoice (overview, payment,
credit note, void) and the confirmation pop-up before a change.

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.)
"""

from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from billing_portal.domain.i18n import language_of, translate
from billing_portal.entrypoints.web.common import (
    PAGE_SIZE,
    Csrf,
    NotFoundError,
    Operator,
    check_csrf,
    invoice_row,
    render,
    safe,
    send_change,
)
from billing_portal.ports import BillingApi


def _invoice_list_routes(app: FastAPI, api: BillingApi) -> None:
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
        return render(
            request,
            "console_invoices.html.j2",
            user,
            wanted=wanted,
            rows=[invoice_row(i) for i in found["items"]],
            page=page,
            has_next=found["next_offset"] is not None,
            query="&".join(f"{k}={v}" for k, v in params.items()),
        )


def _invoice_page_routes(app: FastAPI, api: BillingApi) -> None:
    @app.get("/console/invoices/{number}")
    async def console_invoice(request: Request, user: Operator, number: str) -> HTMLResponse:
        invoice = await api.get_json(user, f"/v1/invoices/{safe(number)}")
        dues = None
        if invoice.get("number") and invoice.get("document"):
            dues = await api.get_json(user, f"/v1/invoices/{safe(number)}/dues")
        return render(request, "console_invoice.html.j2", user, invoice=invoice, dues=dues)


def _invoice_change_routes(app: FastAPI, api: BillingApi) -> None:
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
        check_csrf(request, csrf)
        if action not in ("payment", "credit", "void"):
            raise NotFoundError
        back = f"/console/invoices/{safe(number)}"
        fields = {"amount": amount, "method": method, "reference": reference, "reason": reason}
        if confirmed != "yes":
            dues = await api.get_json(user, f"/v1/invoices/{safe(number)}/dues")
            return render(
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
        done = translate(language_of(user.language), "done")
        path = f"/v1/invoices/{safe(number)}/{path}"
        await send_change(api, request, user, method="POST", path=path, body=body, done=done)
        return RedirectResponse(back, status_code=303)


def _amount(text: str) -> str:
    """A decimal string from a form field ('' when it is not a number; ``,`` accepted)."""
    cleaned = text.strip().replace(" ", "").replace(",", ".")
    try:
        return str(Decimal(cleaned)) if cleaned else ""
    except InvalidOperation:
        return ""


ROUTES = (_invoice_list_routes, _invoice_page_routes, _invoice_change_routes)
"""The route builders of this area, in the order their routes are matched."""
