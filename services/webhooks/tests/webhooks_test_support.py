"""Events and endpoints the webhooks tests share.

Imported as ``webhooks_test_support``: this folder is on pytest's ``pythonpath`` (root
pyproject.toml).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from billing_schemas.events import (
    BillProcessed,
    BillSummary,
    FinalizedInvoice,
    InvoiceFinalized,
    InvoicePaid,
    PaidInvoice,
    Payment,
    PaymentRecorded,
)
from billing_webhooks.domain.endpoints import Endpoint, new_secret
from billing_webhooks.domain.messages import EventKind

T0 = datetime(2024, 10, 1, 9, 0, tzinfo=UTC)


def finalized(
    customer: str = "acme", period: str = "2024-09", at: datetime = T0
) -> InvoiceFinalized:
    """An invoice of ``customer`` finalized at ``at``."""
    invoice_id = f"{customer}:{period}"
    return InvoiceFinalized.create(
        FinalizedInvoice(
            invoice_id=invoice_id,
            invoice_number=f"INV-{customer.upper()}-1",
            customer_id=customer,
            customer_name=customer.title(),
            invoicing_entity_id="cumulus",
            period=period,
            issue_date=date(2024, 10, 1),
            due_date=date(2024, 10, 31),
            currency="EUR",
            subtotal=Decimal("100.00"),
            tax=Decimal("20.00"),
            total=Decimal("120.00"),
            outstanding=Decimal("120.00"),
            line_count=3,
            pdf_file_id="f1",
            pdf_sha256="0" * 64,
        ),
        source="invoicing",
        correlation_id=f"close:{period}",
        event_id=f"invoice-finalized:{invoice_id}",
        occurred_at=at,
    )


def payment(
    customer: str = "acme", period: str = "2024-09", at: datetime = T0 + timedelta(days=3)
) -> PaymentRecorded:
    """A payment of the whole invoice at ``at``."""
    invoice_id = f"{customer}:{period}"
    return PaymentRecorded.create(
        Payment(
            payment_id=f"pay-{invoice_id}",
            invoice_id=invoice_id,
            invoice_number=f"INV-{customer.upper()}-1",
            customer_id=customer,
            amount=Decimal("120.00"),
            currency="EUR",
            method="sepa",
            reference="BANK-1",
            paid_on=date(2024, 10, 4),
            outstanding_after=Decimal("0.00"),
        ),
        source="invoicing",
        correlation_id=f"pay-{invoice_id}",
        event_id=f"payment-recorded:pay-{invoice_id}",
        occurred_at=at,
    )


def paid(
    customer: str = "acme", period: str = "2024-09", at: datetime = T0 + timedelta(days=3)
) -> InvoicePaid:
    """The invoice became paid at ``at`` (the same instant as the payment)."""
    invoice_id = f"{customer}:{period}"
    return InvoicePaid.create(
        PaidInvoice(
            invoice_id=invoice_id,
            invoice_number=f"INV-{customer.upper()}-1",
            customer_id=customer,
            customer_name=customer.title(),
            currency="EUR",
            total=Decimal("120.00"),
            paid=Decimal("120.00"),
            credited=Decimal("0.00"),
            settled_by=f"pay-{invoice_id}",
        ),
        source="invoicing",
        correlation_id=f"pay-{invoice_id}",
        event_id=f"invoice-paid:{invoice_id}",
        occurred_at=at,
    )


def bill_processed(bill_id: str = "bill-1", at: datetime = T0) -> BillProcessed:
    """A bill file loaded."""
    return BillProcessed.create(
        BillSummary(
            bill_id=bill_id,
            file_name="focus.csv",
            checksum_sha256="1" * 64,
            format="focus",
            status="processed",
            billing_periods=["2024-09"],
            rows_read=10,
            rows_accepted=10,
            rows_rejected=0,
            billed_cost_totals={"USD": Decimal("12.34")},
        ),
        source="ingest",
        correlation_id=bill_id,
        event_id=f"bill-processed:{bill_id}",
        occurred_at=at,
    )


def endpoint(
    endpoint_id: str = "ep_1",
    *,
    customer: str | None = None,
    kinds: frozenset[EventKind] = frozenset(),
    url: str = "https://erp.example/hooks",
) -> Endpoint:
    """An enabled endpoint."""
    return Endpoint(
        endpoint_id=endpoint_id,
        url=url,
        secret=new_secret(),
        customer_id=customer,
        event_kinds=kinds,
        description="",
        created_at=T0,
        created_by="test",
    )
