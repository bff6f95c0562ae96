"""A fake of the billing API for the portal's unit tests: it applies the same scope rule as
invoicing (another customer's resources answer 404) over a few invoices in memory."""

from __future__ import annotations

from typing import Any

from billing_portal.domain.users import User
from billing_portal.ports import ApiError


def invoice(number: str, customer: str, outstanding: str, status: str, due: str) -> dict[str, Any]:
    return {
        "invoice_id": f"{customer}:2024-09",
        "number": number,
        "customer_id": customer,
        "period": "2024-09",
        "status": status,
        "currency": "EUR",
        "total": "130.90",
        "outstanding": outstanding,
        "draft_total": None,
        "issue_date": "2024-10-01",
        "due_date": due,
        "has_pdf": True,
    }


class FakeBillingApi:
    def __init__(self) -> None:
        self.invoices = [
            invoice("CCR-2024-000001", "alpha", "130.90", "finalized", "2999-10-31"),
            invoice("CCR-2024-000002", "alpha", "0.00", "paid", "2024-10-31"),
            invoice("CCR-2024-000003", "alpha", "10.00", "overdue", "2024-10-31"),
            invoice("CCR-2024-000009", "beta", "53.55", "finalized", "2999-10-31"),
        ]
        self.contacts: dict[str, list[dict[str, Any]]] = {
            "alpha": [{"contact_id": "ap@alpha.example", "email": "ap@alpha.example",
                       "name": None, "roles": ["Billing", "Tech", "DPO"], "primary": True}],
        }  # fmt: skip
        self.calls: list[tuple[str, str, str, Any]] = []
        self.bills_loaded: list[dict[str, Any]] = []
        self.margin_rows: list[dict[str, Any]] = []

    def _visible(self, user: User, customer: str) -> None:
        if not user.is_operator and user.customer_id != customer:
            raise ApiError(404, "not found")

    def _invoice(self, user: User, number: str) -> dict[str, Any]:
        for found in self.invoices:
            if found["number"] == number:
                self._visible(user, found["customer_id"])
                return found
        raise ApiError(404, f"no invoice {number!r}")

    async def get_json(self, user: User, path: str, params: dict[str, str] | None = None) -> Any:
        self.calls.append((user.email, "GET", path, params))
        parts = path.strip("/").split("/")
        if path == "/v1/invoices":
            rows = [
                i for i in self.invoices if user.is_operator or i["customer_id"] == user.customer_id
            ]
            if params and params.get("status"):
                rows = [i for i in rows if i["status"] == params["status"]]
            return {"items": rows, "offset": 0, "limit": 50, "next_offset": None}
        if path == "/v1/reports/margin":
            if not user.is_operator:
                raise ApiError(403, "needs an operator token")
            return {"period": (params or {})["period"], "rows": self.margin_rows}
        if parts[:2] == ["v1", "invoices"] and len(parts) == 4 and parts[3] == "dues":
            found = self._invoice(user, parts[2])
            return {
                "number": found["number"], "currency": "EUR", "subtotal": "110.00",
                "taxes": [{"label": "VAT 19%", "tax": "20.90"}], "total": "130.90",
                "paid": "0.00", "credited": "0.00", "outstanding": found["outstanding"],
                "due_date": found["due_date"], "status": found["status"],
                "payment_methods": [{"kind": "SEPA transfer", "details": "IBAN DE00 1234"}],
                "payment_reference": found["number"], "payments": [], "credit_notes": [],
            }  # fmt: skip
        if parts[:2] == ["v1", "customers"] and len(parts) == 3:
            self._visible(user, parts[2])
            return {"customer_id": parts[2], "name": "Alpha GmbH", "address_lines": ["Weg 1"],
                    "city": "Berlin", "postal_code": "10115", "country": "DE",
                    "vat_id": "DE123456789", "currency": "EUR", "payment_terms_days": 30,
                    "language": "de"}  # fmt: skip
        if parts[:2] == ["v1", "customers"] and parts[3:] == ["credit-notes"]:
            self._visible(user, parts[2])
            return [
                {"credit_note_id": "n1", "number": "CCR-CN-2024-000001", "currency": "EUR",
                 "invoice_number": "CCR-2024-000003", "amount": "5.00",
                 "issue_date": "2024-10-15", "reason": "goodwill"},
            ] if parts[2] == "alpha" else []  # fmt: skip
        if parts[:2] == ["v1", "customers"] and parts[3:] == ["contacts"]:
            self._visible(user, parts[2])
            return self.contacts.get(parts[2], [])
        raise ApiError(404, "no such route")

    async def send_json(self, user: User, method: str, path: str, body: Any) -> Any:
        self.calls.append((user.email, method, path, body))
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "customers"]:
            self._visible(user, parts[2])
            if method == "DELETE":
                raise ApiError(
                    409, [{"loc": ["body", "roles"], "msg": "keeps one Billing contact"}]
                )
            return {}
        if not user.is_operator:
            raise ApiError(403, "needs an operator token")
        return {"preview": [], "closing": []}

    async def get_file(self, user: User, path: str) -> tuple[bytes, str, str]:
        self.calls.append((user.email, "GET", path, None))
        number = path.split("/")[3]
        self._invoice(user, number)
        return b"%PDF-1.7 " + number.encode(), "application/pdf", f"{number}.pdf"

    async def bills(self, user: User, period: str) -> Any:
        self.calls.append((user.email, "GET", "/v1/bills", {"period": period}))
        return [b for b in self.bills_loaded if period in b["billing_periods"]]
