"""The settlement rules (domain/settlement.py): owed, outstanding, overpaid and the status."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.domain.settlement import (
    Settlement,
    SettlementError,
    check_amount,
    days_overdue,
    payment_id_for,
    split_credit,
)

D = Decimal


@pytest.mark.parametrize(
    ("paid", "credited", "voided", "overdue", "outstanding", "overpaid", "status"),
    [
        ("0", "0", False, False, "119.00", "0", InvoiceStatus.FINALIZED),
        ("50", "0", False, False, "69.00", "0", InvoiceStatus.PARTIALLY_PAID),  # 119 - 50
        ("50", "0", False, True, "69.00", "0", InvoiceStatus.OVERDUE),
        ("119", "0", False, True, "0", "0", InvoiceStatus.PAID),  # paid wins over overdue
        ("130", "0", False, False, "0", "11.00", InvoiceStatus.PAID),  # 130 - 119 overpaid
        ("100", "19", False, False, "0", "0", InvoiceStatus.PAID),  # owed 119 - 19 = 100
        ("100", "119", True, False, "0", "100", InvoiceStatus.VOID),  # all credited: paid back
    ],
)
def test_standing(
    paid: str,
    credited: str,
    voided: bool,
    overdue: bool,
    outstanding: str,
    overpaid: str,
    status: InvoiceStatus,
) -> None:
    s = Settlement(D("119.00"), D(paid), D(credited), voided=voided, overdue=overdue)
    assert (s.outstanding, s.overpaid, s.status) == (D(outstanding), D(overpaid), status)


def test_amounts_must_fit_the_currency() -> None:
    check_amount(D("1235"), "JPY", "x")
    with pytest.raises(SettlementError, match="more decimals than JPY's 0"):
        check_amount(D("1234.5"), "JPY", "x")
    with pytest.raises(SettlementError, match="must be positive"):
        check_amount(D("0"), "EUR", "x")


def test_days_overdue_and_payment_identity() -> None:
    assert days_overdue(date(2024, 10, 31), date(2024, 10, 31)) == 0
    assert days_overdue(date(2024, 10, 31), date(2024, 11, 30)) == 30
    assert payment_id_for("a:2024-09", "Card", "R1") == payment_id_for("a:2024-09", "Card", "R1")
    assert payment_id_for("a:2024-09", "Card", "R1") != payment_id_for("a:2024-09", "Card", "R2")


def test_credit_tax_part_is_the_invoices_proportion_rounded_once() -> None:
    # 50.00 credited on 119.00 of which 19.00 tax: 50 x 19 / 119 = 7.983... -> 7.98
    assert split_credit(D("50.00"), total=D("119.00"), tax=D("19.00"), currency="EUR") == D("7.98")
    assert split_credit(D("5"), total=D(0), tax=D(0), currency="EUR") == D(0)
