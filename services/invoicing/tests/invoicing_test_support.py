"""Builders shared by invoicing's tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from billing_catalog.models import Catalog, InvoicingEntity
from billing_invoicing.domain.invoice import InvoiceStatus, assemble_invoice, due_date_for
from billing_invoicing.domain.model import ChargeAmounts, DraftSums, Invoice
from billing_invoicing.ports import InvoiceRepository
from billing_schemas.events import ChargeCategory, LineType, RatedCharge

D = Decimal


def rated(
    charge_id: str,
    customer_id: str = "alpha",
    *,
    period: str = "2024-09",
    service: str = "Amazon EC2",
    price: str = "1.00",
    cost: str = "0.80",
) -> RatedCharge:
    """A rated usage charge in EUR."""
    return RatedCharge(
        charge_id=charge_id,
        record_id=charge_id,
        customer_id=customer_id,
        provider="AWS",
        sub_account_id="111",
        billing_period=period,
        charge_period_start=datetime(int(period[:4]), int(period[5:]), 1, tzinfo=UTC),
        charge_category=ChargeCategory.USAGE,
        line_type=LineType.ON_DEMAND,
        service_name=service,
        cost=Decimal(cost),
        cost_currency="EUR",
        price=Decimal(price),
        currency="EUR",
        margin=Decimal(price) - Decimal(cost),
        rule="markup (global)",
        price_list_id="p",
        price_list_version=1,
    )


ONE_CUSTOMER_CATALOG: dict[str, Any] = {
    "invoicing_entities": [
        {
            "id": "cumulus",
            "name": "Cumulus GmbH",
            "address": {"lines": ["Street 1"], "country": "DE"},
            "number_prefix": "C-",
            "email": "billing@cumulus.example",
        }
    ],
    "price_lists": [
        {"id": "standard", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}
    ],
    "tax_rates": [{"country": "DE", "percent": "19", "effective_from": "2020-01-01"}],
    "customers": [
        {
            "id": "alpha",
            "name": "Alpha",
            "address": {"lines": ["Weg 1"], "country": "DE"},
            "currency": "EUR",
            "invoicing_entity": "cumulus",
            "price_list": "standard",
        }
    ],
}
"""One German customer (EUR, 19 % VAT) of one entity, as a catalog file says it: the hot-query
and close-read tests."""


SETTLE_CATALOG = Catalog.model_validate(  # one German customer, 19 % VAT, 30 days
    {
        "invoicing_entities": [
            {
                "id": "cumulus",
                "name": "Cumulus Cloud Resellers GmbH",
                "address": {"lines": ["Wolkenstrasse 7"], "country": "DE"},
                "number_prefix": "CCR-",
                "email": "billing@cumulus.example",
                "payment_methods": [
                    {"kind": "Bank transfer", "details": "IBAN DE89 3704 0044 0532 0130 00"},
                    {"kind": "Card", "details": "https://pay.cumulus.example"},
                ],
            }
        ],
        "tax_rates": [{"country": "DE", "percent": "19"}],
        "price_lists": [{"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}],
        "customers": [
            {
                "id": "alpha",
                "name": "Alpha GmbH",
                "address": {"lines": ["Weg 1"], "country": "DE"},
                "currency": "EUR",
                "payment_terms_days": 30,
                "invoicing_entity": "cumulus",
                "price_list": "p",
            }
        ],
    }
)


class Entities:
    """The invoicing entities of :data:`SETTLE_CATALOG`."""

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        return next((e for e in SETTLE_CATALOG.invoicing_entities if e.id == entity_id), None)


async def issue(
    repo: InvoiceRepository, price: str = "100.00", period: str = "2024-09", seq: int = 1
) -> None:
    """An invoice frozen, numbered and announced as the close leaves it."""
    invoice_id = f"alpha:{period}"
    invoice = Invoice.new(invoice_id)
    await repo.save(invoice)
    sums = DraftSums()
    sums.add(
        ChargeAmounts("c1", (period, "AWS", "Amazon EC2", "usage"), "EUR", D(80), D(price), D(0))
    )
    issue_date = date(2024, 10, 1)
    invoice.start_finalizing(issue_date, sums)
    [customer], [entity] = SETTLE_CATALOG.customers, SETTLE_CATALOG.invoicing_entities
    draft = assemble_invoice(
        customer=customer,
        entity=entity,
        period=period,
        groups=invoice.charge_groups(),
        tax_rates=SETTLE_CATALOG.tax_rates,
    )
    number = f"CCR-2024-{seq:06d}"
    document = draft.model_copy(
        update={
            "number": number,
            "status": InvoiceStatus.FINALIZED,
            "issue_date": issue_date,
            "due_date": due_date_for(issue_date, customer.payment_terms_days),
            "outstanding": max(draft.total, D(0)),
        }
    )
    invoice.finalize(document, seq=seq, pdf_file_id="f", pdf_sha256="s")
    await repo.save(invoice)
    await repo.mark_published(invoice_id)
