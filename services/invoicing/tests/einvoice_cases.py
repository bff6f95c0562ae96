"""E-invoice test cases: real invoices assembled by the domain, finalized, in every tax situation.

Domestic VAT, reverse charge, not subject (outside the EU), a JPY invoice, an invoice with
subscription netting and a late line, and credit notes; each as the three formats we issue, and
the Mustang validator run on them (``scripts/einvoice-validator.sh``).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing_catalog.models import Customer, InvoicingEntity, Plan, TaxRate
from billing_invoicing.domain.einvoice import (
    CreditNoteDocument,
    EInvoice,
    einvoice_from_credit_note,
    einvoice_from_invoice,
    routing_for,
    seller_details_for,
)
from billing_invoicing.domain.invoice import ChargeGroup, InvoiceDocument, assemble_invoice
from billing_invoicing.domain.settlement import split_credit

ROOT = Path(__file__).resolve().parents[3]
VALIDATOR = ROOT / "scripts" / "einvoice-validator.sh"
REPORTS = ROOT / "var" / "einvoice-reports"
"""Where the validator's reports of failed documents are kept."""

D = Decimal
PERIOD = "2024-09"
ISSUE = date(2024, 10, 1)
RATES = [
    TaxRate(country="DE", percent=D("19")),
    TaxRate(country="FR", percent=D("20")),
]
PLANS = {
    "business": Plan(
        id="business",
        name="Business",
        currency="EUR",
        fee=D("500.00"),
        included_infrastructure=D("400.00"),
    )
}

SELLER = InvoicingEntity.model_validate(
    {
        "id": "cumulus",
        "name": "Cumulus Cloud Resellers GmbH",
        "address": {
            "lines": ["Wolkenstrasse 7"],
            "country": "DE",
            "city": "Berlin",
            "postal_code": "10115",
        },
        "vat_id": "DE123456788",
        "phone": "+49 30 1234567",
        "peppol_participant_id": "9930:DE123456788",
        "number_prefix": "CCR-",
        "email": "billing@cumulus.example",
        "payment_methods": [
            {
                "kind": "Bank transfer",
                "details": "IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX",
            },
            {"kind": "Card", "details": "Pay online at https://pay.cumulus.example"},
        ],
    }
)


def customer(
    customer_id: str,
    country: str,
    currency: str = "EUR",
    vat_id: str | None = None,
    **extra: Any,
) -> Customer:
    """A customer with what XRechnung and Peppol need: city, post code, a Billing contact,
    a buyer reference (Leitweg-ID) and a Peppol participant id."""
    return Customer.model_validate(
        {
            "id": customer_id,
            "name": f"Buyer {customer_id}",
            "address": {
                "lines": ["Street 1"],
                "country": country,
                "city": "Town",
                "postal_code": "12345",
            },
            "vat_id": vat_id,
            "currency": currency,
            "invoicing_entity": "cumulus",
            "price_list": "standard",
            "contacts": [{"email": f"ap@{customer_id}.example", "roles": ["Billing"]}],
            "einvoice": ["facturx", "xrechnung", "peppol"],
            "einvoice_buyer_reference": "04011000-12345-34",
            "peppol_participant_id": "0088:5798000000001",
            **extra,
        }
    )


def group(price: str, service: str, period: str | None = None) -> ChargeGroup:
    return ChargeGroup(
        provider="AWS",
        service_name=service,
        charge_count=3,
        cost=D(0),
        price=D(price),
        period=period,
    )


def finalized(buyer: Customer, groups: list[ChargeGroup], sequence: int) -> InvoiceDocument:
    draft = assemble_invoice(
        customer=buyer,
        entity=SELLER,
        period=PERIOD,
        groups=groups,
        plans=PLANS,
        tax_rates=RATES,
    )
    return draft.model_copy(
        update={
            "number": f"CCR-2024-{sequence:06d}",
            "issue_date": ISSUE,
            "due_date": ISSUE + timedelta(days=buyer.payment_terms_days),
        }
    )


@dataclass(frozen=True)
class Case:
    """One document: its name, the invoice it is (or credits), and the EN 16931 model."""

    name: str
    invoice: InvoiceDocument
    document: EInvoice
    buyer: Customer
    note: CreditNoteDocument | None = None


def credit_note(
    invoice: InvoiceDocument, number: str, amount: Decimal, *, void: bool
) -> CreditNoteDocument:
    tax = split_credit(amount, total=invoice.total, tax=invoice.tax, currency=invoice.currency)
    return CreditNoteDocument(
        number=number,
        issue_date=ISSUE + timedelta(days=5),
        amount=amount,
        tax=tax,
        net=amount - tax,
        reason="Service credit for an outage" if not void else "Issued in error",
        void=void,
    )


def cases() -> list[Case]:
    """Every e-invoice situation we issue."""
    domestic_buyer = customer("alpha", "DE", vat_id="DE987654328")
    reverse_buyer = customer("bravo", "FR", vat_id="FR11123456782")
    foreign_buyer = customer("northwind", "US", "USD")
    jpy_buyer = customer("kaisha", "JP", "JPY")
    netting_buyer = customer(
        "delta",
        "DE",
        subscriptions=[{"plan": "business", "start": "2024-01-01"}],
    )
    prorated_buyer = customer(
        "echo",
        "DE",
        subscriptions=[
            {
                "plan": "business",
                "start": "2024-09-10",
                "quantity": 3,
                "quantity_changes": [{"effective_from": "2024-09-20", "quantity": 5}],
            }
        ],
    )
    invoices = {
        # 6.013 + 4.013: the VAT is taken on the unrounded 10.026 (docs/money.md)
        "domestic": (
            domestic_buyer,
            finalized(domestic_buyer, [group("6.013", "EC2"), group("4.013", "S3")], 1),
        ),
        "reverse-charge": (
            reverse_buyer,
            finalized(reverse_buyer, [group("1000.00", "EC2"), group("-12.50", "Credits")], 2),
        ),
        "not-subject": (foreign_buyer, finalized(foreign_buyer, [group("250.40", "EC2")], 3)),
        "jpy": (
            jpy_buyer,
            finalized(jpy_buyer, [group("123456.4", "EC2"), group("789.3", "S3")], 4),
        ),
        # the plan includes 400.00 of infrastructure: 437.25 of cloud charges are netted by it,
        # and a line of August arrives after August's invoice
        "netting-and-late": (
            netting_buyer,
            finalized(
                netting_buyer,
                [
                    group("300.125", "EC2"),
                    group("137.125", "S3"),
                    group("42.10", "EC2", period="2024-08"),
                ],
                5,
            ),
        ),
        # started on the 10th at 3, 5 from the 20th: two prorated spans, each a line whose
        # period (BG-26) is its days: 500 x 3 x 10/30 = 500.00, 500 x 5 x 11/30 = 916.67
        "prorated": (prorated_buyer, finalized(prorated_buyer, [group("100.00", "EC2")], 6)),
    }
    result = [
        Case(
            name,
            invoice,
            einvoice_from_invoice(invoice, routing_for(buyer), seller_details_for(SELLER)),
            buyer,
        )
        for name, (buyer, invoice) in invoices.items()
    ]
    notes = {
        "credit-note": ("domestic", "CCR-CN-2024-000001", D("5.00"), False),
        "credit-note-void": ("reverse-charge", "CCR-CN-2024-000002", None, True),
    }
    for name, (of, number, amount, void) in notes.items():
        buyer, invoice = invoices[of]
        note = credit_note(invoice, number, invoice.total if amount is None else amount, void=void)
        document = einvoice_from_credit_note(
            invoice, note, routing_for(buyer), seller_details_for(SELLER)
        )
        result.append(Case(name, invoice, document, buyer, note))
    return result


@dataclass(frozen=True)
class Verdict:
    """What the validator said of one file; its report is kept only when it is invalid."""

    path: Path
    valid: bool
    report: Path


def validate(files: list[Path], reports: Path) -> dict[Path, Verdict]:
    """Run the Mustang validator on ``files`` (one JVM), reports written under ``reports``.

    Reports of valid files are deleted; those of invalid files are kept for whoever reads the
    failure.
    """
    completed = subprocess.run(
        [str(VALIDATOR), "validate", str(reports), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    verdicts: dict[Path, Verdict] = {}
    for line in completed.stdout.splitlines():
        found = re.fullmatch(r"(valid|invalid) (.+)", line.strip())
        if found:
            path = Path(found.group(2))
            report = reports / f"{path.name}.report.xml"
            verdicts[path] = Verdict(path, found.group(1) == "valid", report)
    missing = [f for f in files if f not in verdicts]
    if missing:
        msg = (
            f"the validator gave no verdict on {missing} (exit {completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
        raise RuntimeError(msg)
    for verdict in verdicts.values():
        if verdict.valid:
            verdict.report.unlink(missing_ok=True)
    return verdicts


def errors_in(report: Path) -> list[str]:
    """The error messages of a Mustang report."""
    return re.findall(r"<error[^>]*>(.*?)</error>", report.read_text(encoding="utf-8"), re.S)
