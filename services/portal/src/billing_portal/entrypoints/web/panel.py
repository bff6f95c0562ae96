"""The customer panel: the invoice list, an invoice's files (PDF, CSV, several PDFs as a ZIP),
the pay pop-up and this month's usage so far.

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.)
"""

import io
import zipfile
from collections import defaultdict
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from billing_portal.domain.i18n import language_of, translate
from billing_portal.domain.users import User
from billing_portal.entrypoints.web.common import (
    PAGE_SIZE,
    Anyone,
    Csrf,
    Customer,
    check_csrf,
    customer_path,
    flash,
    invoice_row,
    render,
    safe,
)
from billing_portal.ports import BillingApi


def _invoice_list_routes(app: FastAPI, api: BillingApi) -> None:
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
        invoices = [invoice_row(i) for i in items if i.get("number")]
        has_next = found["next_offset"] is not None
        oldest = min((str(r["issue_date"]) for r in invoices if r.get("issue_date")), default=None)
        notes = await api.get_json(user, customer_path(user, "/credit-notes"))
        rows = invoices + [
            _credit_note_row(n)
            for n in notes
            if (newest is None or n["issue_date"] < newest)
            and (not has_next or oldest is None or n["issue_date"] >= oldest)
        ]
        rows.sort(key=lambda r: str(r.get("issue_date") or ""), reverse=True)
        return render(request, "invoices.html.j2", user, rows=rows, page=page, has_next=has_next)


async def _invoice_pdf(api: BillingApi, user: User, number: str) -> tuple[bytes, str]:
    """The invoice's PDF and its file name."""
    content, _, name = await api.get_file(user, f"/v1/invoices/{safe(number)}/pdf")
    return content, name


def _invoice_file_routes(app: FastAPI, api: BillingApi) -> None:
    @app.get("/invoices/{number}/pdf")
    async def invoice_pdf(
        user: Anyone, number: str, download: Annotated[bool, Query()] = False
    ) -> Response:
        content, name = await _invoice_pdf(api, user, number)
        how = "attachment" if download else "inline"
        return Response(
            content,
            media_type="application/pdf",
            headers={"Content-Disposition": f'{how}; filename="{name}"'},
        )

    @app.get("/invoices/{number}/csv")
    async def invoice_csv(user: Anyone, number: str) -> Response:
        content, _, name = await api.get_file(user, f"/v1/invoices/{safe(number)}/csv")
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
        check_csrf(request, csrf)
        if not numbers:
            lang = language_of(user.language)
            flash(request, "error", translate(lang, "none_selected"))
            return RedirectResponse("/invoices", status_code=303)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for number in sorted(set(numbers))[:PAGE_SIZE]:
                content, name = await _invoice_pdf(api, user, number)
                archive.writestr(name, content)
        return Response(
            buffer.getvalue(),
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="invoices.zip"'},
        )


def _pay_routes(app: FastAPI, api: BillingApi) -> None:
    @app.get("/invoices/{number}/pay")
    async def pay_page(request: Request, user: Anyone, number: str) -> HTMLResponse:
        dues = await api.get_json(user, f"/v1/invoices/{safe(number)}/dues")
        fragment = request.headers.get("x-fragment") == "1"  # the pop-up's content only
        template = "pay_fragment.html.j2" if fragment else "pay.html.j2"
        return render(request, template, user, dues=dues)


def _usage_routes(app: FastAPI, api: BillingApi) -> None:
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
                user, f"/v1/invoices/{safe(drafts['items'][0]['invoice_id'])}"
            )
            services = _by_service(draft.get("draft_lines") or [])
        return render(request, "usage.html.j2", user, draft=draft, services=services)


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


ROUTES = (_invoice_list_routes, _invoice_file_routes, _pay_routes, _usage_routes)
"""The route builders of this area, in the order their routes are matched."""
