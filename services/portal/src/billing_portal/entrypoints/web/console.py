"""The operator console: the billing report (margin per customer, the bills loaded) and
Generate Invoices (the preview, its confirmation, the outcome).

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.)
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from billing_portal.entrypoints.web.common import Csrf, Operator, check_csrf, render
from billing_portal.ports import ApiError, BillingApi


def _report_routes(app: FastAPI, api: BillingApi) -> None:
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
        return render(
            request,
            "console_report.html.j2",
            user,
            period=period,
            customers=_margin_by_customer(report["rows"]),
            bills=bills,
            bills_error=bills_error,
        )


def _generate_routes(app: FastAPI, api: BillingApi) -> None:
    @app.get("/console/generate")
    async def generate_page(
        request: Request, user: Operator, period: Annotated[str | None, Query()] = None
    ) -> HTMLResponse:
        period = _period(period)
        found = await api.send_json(user, "POST", f"/v1/periods/{period}/close", {"dry_run": True})
        return render(
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
        check_csrf(request, csrf)
        period = _period(period)
        if confirmed != "yes":
            return render(request, "console_confirm_generate.html.j2", user, period=period)
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
        return render(
            request,
            "console_outcome.html.j2",
            user,
            period=period,
            items=items,
            pending=pending,
        )


def _period(period: str | None) -> str:
    """The period asked, or last month when none (or a malformed one) is given."""
    if period and len(period) == 7 and period[4] == "-" and period.replace("-", "").isdigit():
        return period
    today = date.today()  # noqa: DTZ011 - the operator's month
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


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


ROUTES = (_report_routes, _generate_routes)
"""The route builders of this area, in the order their routes are matched."""
