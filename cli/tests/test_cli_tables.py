"""The commands' tables at 80 columns (a CI log, a pipe): no number, id, date or amount is cut.

The demo printed "CCR-2026…", "northwind…", "2026-12…" in ``billing invoices list`` and
"bill-…", "provi…", "accou…" in ``billing reconcile``; these print the same figures through
the commands' own printing code into an 80-column console.
"""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from rich.console import Console

from billing_cli.reconcile import command as reconcile_command
from billing_cli.reconcile.domain import (
    AccountFigures,
    Check,
    CustomerFigures,
    Difference,
    Explanation,
    Reconciliation,
)
from billing_invoicing.entrypoints import cli as invoicing_cli

D = Decimal
WIDTH = 80
ELLIPSIS = "\u2026"


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Console:
    """An 80-column console, not a terminal: what rich uses in CI and behind a pipe."""
    recording = Console(width=WIDTH, file=io.StringIO(), record=True, color_system=None)
    monkeypatch.setattr(invoicing_cli, "console", recording)
    monkeypatch.setattr(reconcile_command, "console", recording)
    return recording


def _assert_whole(printed: str, values: list[str]) -> None:
    assert [v for v in values if v not in printed] == []
    assert ELLIPSIS not in printed
    assert max(len(line) for line in printed.splitlines()) <= WIDTH


def _row(
    number: str | None, customer: str, status: str, total: str | None
) -> dict[str, str | None]:
    return {
        "invoice_id": f"{customer}:2024-09",
        "number": number,
        "customer_id": customer,
        "period": "2024-09",
        "status": status,
        "currency": "USD",
        "total": total,
        "draft_total": "140.00" if total is None else None,
        "issue_date": "2026-12-01" if number else None,
        "due_date": "2026-12-31" if number else None,
    }


def test_invoices_list_prints_numbers_customers_and_dates_whole(console: Console) -> None:
    rows = [
        _row("CCR-2026-000001", "northwind", "partially_paid", "1234567.89"),
        _row("CCR-2026-000002", "contoso", "finalized", "210.00"),
        _row(None, "fabrikam-holdings-europe", "draft", None),
    ]
    invoicing_cli.print_invoice_rows(rows)

    _assert_whole(
        console.export_text(),
        [
            "CCR-2026-000001", "CCR-2026-000002", "northwind", "contoso",
            "fabrikam-holdings-europe", "partially_paid", "2026-12-01", "2026-12-31",
            "$1,234,567.89", "$210.00", "$140.00 (so far)",
        ],
    )  # fmt: skip


def test_reconcile_prints_bills_providers_accounts_and_amounts_whole(console: Console) -> None:
    result = Reconciliation(
        period="2024-09",
        customer_id=None,
        counts={"bill_lines": 1_204, "charges": 1_198},
        accounts=[
            AccountFigures(
                bill_id="bill-5f0c2a9e7d41b3c8",
                provider="AWS",
                billing_account_id="113538902041",
                currency="USD",
                lines=1_204,
                billed=D("12345.6789012345"),
                published=D("12345.6789012345"),
                charged=D("12340.1234567890"),
                stored=D("12340.1234567890"),
            )
        ],
        customers=[
            CustomerFigures(
                customer_id="northwind",
                currency="USD",
                charges=1_198,
                rated=D("13327.3333987654"),
                invoiced=D("13300.0000000001"),
                late=D("27.3333987653"),
            )
        ],
        differences=[
            Difference(
                check=Check.BILL,
                subject="bill-5f0c2a9e7d41b3c8",
                what="6 lines rejected",
                records=("row-17", "row-18"),
                explanation=Explanation.REJECTED,
                detail="BilledCost is not a decimal number in rows 17 and 18 of the file",
            )
        ],
    )
    reconcile_command.show(result)

    _assert_whole(
        console.export_text(),
        [
            "bill-5f0c2a9e7d41b3c8", "AWS", "113538902041", "12345.6789012345",
            "12340.1234567890", "1,204", "northwind", "13327.3333987654", "13300.0000000001",
            "27.3333987653", "1,198", "6 lines rejected",
        ],
    )  # fmt: skip
