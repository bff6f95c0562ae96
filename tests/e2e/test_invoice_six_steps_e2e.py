"""Issue 5's acceptance: a worked example of the six steps, then taxes, on the real database.

Two customers of one German reseller subscribe to the Business plan (500.00 EUR a month,
including 400.00 of cloud infrastructure). Their usage is rated by the real rating engine (10 %
markup, default rebilling: payer-bought reservations' savings removed), stored and closed by
invoicing's real repositories on FerretDB, rendered by the real PDF worker and kept in GridFS.

* alpha (Germany): uses less than included -> no discount; German VAT 19 %.
* beta (France, with a VAT id): uses more than included, part of it on a reservation the payer
  bought -> overage billed, savings removed and shown; reverse charge, 0 %.

Every expected figure is computed by hand in the comments.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pytest
import yaml
from einvoice_check import validate_issued
from invoicing_test_support import rated
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.einvoice_renderer import CustomerPdfRenderer
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.invoice import InvoiceDocument, LineKind
from billing_invoicing.domain.tax import REVERSE_CHARGE_MENTION
from billing_invoicing.service.credit_note_documents import CreditNotePdfPorts
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import (
    InvoicingPorts,
    close_invoice,
    preview,
)
from billing_invoicing.service.settle_invoices import SettlementPorts, issue_credit_note
from billing_rating.domain.rating import CustomerPricing, rate_usage
from billing_schemas.events import (
    ChargeCategory,
    LineType,
    PeriodClose,
    PeriodClosing,
    RatedCharge,
    UsageRecord,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

D = Decimal
PERIOD = "2024-09"
EC2 = "Amazon Elastic Compute Cloud"
S3 = "Amazon Simple Storage Service"

CATALOG = """
invoicing_entities:
  - id: cumulus
    name: Cumulus Cloud Resellers GmbH
    address: {lines: ["Wolkenstrasse 7", "10115 Berlin"], country: DE, city: Berlin,
              postal_code: "10115"}
    vat_id: DE123456788
    phone: "+49 30 1234567"
    peppol_participant_id: "9930:DE123456788"
    number_prefix: CCR-
    email: billing@cumulus.example
    payment_methods:
      - {kind: Bank transfer, details: "IBAN DE89 3704 0044 0532 0130 00"}
tax_rates:
  - {country: DE, percent: "19"}
  - {country: FR, percent: "20"}
plans:
  - {id: business, name: Business, currency: EUR, fee: "500.00", included_infrastructure: "400.00"}
price_lists:
  - id: standard
    versions:
      - {version: 1, effective_from: 2024-01-01, rules: [{kind: markup, percent: "10"}]}
customers:
  - id: alpha
    name: Alpha Analytik GmbH
    address: {lines: ["Hauptstrasse 1", "80331 München"], country: DE, city: München,
              postal_code: "80331"}
    vat_id: DE987654328
    contacts: [{email: ap@alpha.example, roles: [Billing]}]
    peppol_participant_id: "9930:DE987654328"
    currency: EUR
    payment_terms_days: 30
    invoicing_entity: cumulus
    price_list: standard
    subscriptions: [{plan: business, start: 2024-01-01}]
    accounts: [{provider: AWS, account_id: "111"}]
  - id: beta
    name: Beta Médias SAS
    address: {lines: ["12 rue de la Paix", "75002 Paris"], country: FR, city: Paris,
              postal_code: "75002"}
    vat_id: FR11123456782
    contacts: [{email: compta@beta.example, roles: [Billing]}]
    peppol_participant_id: "0088:5798000000001"
    einvoice: [facturx]
    currency: EUR
    payment_terms_days: 14
    invoicing_entity: cumulus
    price_list: standard
    subscriptions: [{plan: business, start: 2024-06-01}]
    accounts: [{provider: AWS, account_id: "222"}]
  - id: gamma
    name: Gamma Kabushiki Kaisha
    address: {lines: ["1-1 Marunouchi, Chiyoda-ku"], country: JP, city: Tokyo,
              postal_code: "100-0005"}
    currency: JPY
    payment_terms_days: 30
    invoicing_entity: cumulus
    price_list: standard
    contacts: [{email: keiri@gamma.example, roles: [Billing]}]
    peppol_participant_id: "0088:5798000000001"
    accounts: [{provider: AWS, account_id: "333"}]
"""


def usage(
    n: int, account: str, line_type: LineType, service: str, billed: str, **kw: Any
) -> UsageRecord:
    category = (
        ChargeCategory.PURCHASE if line_type is LineType.COMMITMENT_FEE else ChargeCategory.USAGE
    )
    fields: dict[str, Any] = {
        "record_id": f"r{n}",
        "provider": "AWS",
        "billing_account_id": "999",
        "sub_account_id": account,
        "billing_period": kw.pop("period", PERIOD),
        "charge_period_start": datetime(2024, 9, 10, tzinfo=UTC),
        "charge_period_end": datetime(2024, 9, 10, 1, tzinfo=UTC),
        "charge_category": category,
        "line_type": line_type,
        "service_name": service,
        "currency": "EUR",
        "billed_cost": D(billed),
        **kw,
    }
    return UsageRecord.model_validate(fields)


RI = {
    "commitment_id": "arn:aws:ec2:eu-central-1:999:reserved-instances/ri-1",
    "commitment_owner": "payer",
}


def rate(catalog: Catalog, customer_id: str, record: UsageRecord) -> RatedCharge:
    [price_list] = catalog.price_lists
    return rate_usage(record, CustomerPricing(customer_id, "EUR", price_list)).charge


def marker(
    customer_id: str, period: str = PERIOD, issue_date: date = date(2024, 10, 1)
) -> PeriodClosing:
    return PeriodClosing.create(
        PeriodClose(customer_id=customer_id, period=period, issue_date=issue_date),
        source="test",
        correlation_id="acceptance",
    )


def lines(invoice: InvoiceDocument) -> list[tuple[LineKind, str, Decimal]]:
    return [(line.kind, line.description, line.amount) for line in invoice.lines]


async def test_six_steps_with_subscriptions_ri_savings_vat_and_reverse_charge(
    mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    catalog = Catalog.model_validate(yaml.safe_load(CATALOG))
    catalog_repo = MongoCatalogRepository(mongo_db)
    await catalog_repo.apply(catalog)
    invoices = MongoInvoiceRepository(mongo_db)
    await invoices.ensure_indexes()
    events = InMemoryInvoiceEvents()

    records = {
        "alpha": [
            # 227.28 x 1.10 = 250.008
            usage(1, "111", LineType.ON_DEMAND, EC2, "227.28"),
        ],
        "beta": [
            # on-demand: 300.00 x 1.10 = 330.00
            usage(2, "222", LineType.ON_DEMAND, EC2, "300.00"),
            # covered by the payer's RI: billed 0, charged at on-demand 120.00 x 1.10 = 132.00;
            # savings removed = 120.00 - 0 = 120.00
            usage(
                3, "222", LineType.COMMITMENT_COVERED, EC2, "0", on_demand_cost=D("120.00"), **RI
            ),
            # the payer's RI fee is not passed on: price 0
            usage(4, "222", LineType.COMMITMENT_FEE, EC2, "50.00", **RI),
            # 10.005 x 1.10 = 11.0055
            usage(5, "222", LineType.ON_DEMAND, S3, "10.005"),
        ],
    }
    charges = [rate(catalog, cid, r) for cid, rs in records.items() for r in rs]
    await add_charges(invoices, [PositionedCharge(c) for c in charges])
    await add_charges(invoices, [PositionedCharge(c) for c in charges])  # redelivered: stored once

    async with PdfRenderer() as renderer:
        # as the service renders: Factur-X for beta, which receives it, the plain PDF for alpha
        pdfs = CustomerPdfRenderer(renderer, catalog_repo)
        ports = InvoicingPorts(catalog_repo, invoices, pdfs, InvoicePdfStore(mongo_db), events)

        dry = {o.customer_id: o.total for o in await preview(ports, period=PERIOD)}
        assert dry == {"alpha": D("595.00"), "beta": D("573.01")}

        alpha = await close_invoice(ports, marker("alpha"))
        beta = await close_invoice(ports, marker("beta"))
        again = await close_invoice(ports, marker("beta"))  # the marker redelivered

        docs = {d["customer_id"]: d for d in await invoices.list_invoices(period=PERIOD)}
        a = InvoiceDocument.model_validate(docs["alpha"]["document"])
        b = InvoiceDocument.model_validate(docs["beta"]["document"])

        # alpha: (1) Business 500.00; (2) 400.00 included; (3) cloud 250.008;
        # (5) covered 250.008; (6) underuse 149.992, no discount by default.
        # subtotal 500 + 250.008 - 250.008 = 500.00; VAT 19% = 95.00; total 595.00.
        # printed lines: floors 500.00 + 250.00 - 250.01 = 499.99, the missing cent to the largest
        # remainder (0.008, the EC2 line): 500.00 + 250.01 - 250.01
        assert lines(a) == [
            (LineKind.SUBSCRIPTION, "Business subscription", D("500.00")),
            (LineKind.USAGE, f"{EC2} (AWS)", D("250.01")),
            (LineKind.INCLUDED, "Included cloud infrastructure (plans)", D("-250.01")),
        ]
        assert a.netting is not None
        assert (a.netting.included, a.netting.cloud_charges, a.netting.underuse) == (
            D("400.00"),
            D("250.008"),
            D("149.992"),
        )
        assert [(t.label, t.tax) for t in a.taxes] == [("VAT 19% (DE)", D("95.00"))]
        assert (a.subtotal, a.tax, a.total) == (D("500.00"), D("95.00"), D("595.00"))
        assert a.tax_mention is None
        assert a.due_date == date(2024, 10, 31)  # 1 October + 30 days

        # beta: (1) Business 500.00; (2) 400.00 included; (3) cloud 330.00 + 132.00 + 0 +
        # 11.0055 = 473.0055; (4) savings removed 120.00, shown; (5) covered 400.00;
        # (6) overage 73.0055 billed. subtotal 500 + 473.0055 - 400 = 573.0055 -> 573.01;
        # reverse charge: VAT 0.00; total 573.01. Lines: floors 500 + 462 + 11.00 - 400 = 573.00,
        # the missing cent to S3 (remainder 0.0055).
        assert lines(b) == [
            (LineKind.SUBSCRIPTION, "Business subscription", D("500.00")),
            (LineKind.USAGE, f"{EC2} (AWS)", D("462.00")),
            (LineKind.USAGE, f"{S3} (AWS)", D("11.01")),
            (LineKind.INCLUDED, "Included cloud infrastructure (plans)", D("-400.00")),
        ]
        assert b.netting is not None
        assert (b.netting.cloud_charges, b.netting.savings_removed, b.netting.overuse) == (
            D("473.0055"),
            D("120.00"),
            D("73.0055"),
        )
        assert [(t.label, t.tax) for t in b.taxes] == [("VAT 0% (reverse charge)", D("0.00"))]
        assert (b.subtotal, b.tax, b.total) == (D("573.01"), D("0.00"), D("573.01"))
        assert b.tax_mention == REVERSE_CHARGE_MENTION
        assert b.due_date == date(2024, 10, 15)  # 1 October + 14 days

        # stored as integer nanos; numbered gaplessly; announced once
        assert docs["beta"]["total_units"] == 573_010_000_000
        assert docs["alpha"]["tax_units"] == 95_000_000_000
        assert (alpha.number, beta.number) == ("CCR-2024-000001", "CCR-2024-000002")
        assert again.action == "already finalized"
        assert [e.data.total for e in events.finalized] == [D("595.00"), D("573.01")]

        pdf = await InvoicePdfStore(mongo_db).load(docs["beta"]["pdf_file_id"])
        text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
        text = " ".join(text.split())
        assert "Reverse charge: VAT to be accounted for by the recipient" in text
        assert "VAT 0% (reverse charge)" in text
        assert "savings removed" in text
        assert "Overage (billed)" in text

        # usage of September that arrives after its invoice: onto October as a dated correction
        late = rate(catalog, "alpha", usage(6, "111", LineType.ON_DEMAND, EC2, "10.00"))
        counted = await add_charges(invoices, [PositionedCharge(late)])
        assert {e.invoice_id for e in counted} == {"alpha:2024-10"}
        [october] = await preview(ports, period="2024-10", customer_id="alpha")
        # 500.00 fee (no usage of October, so nothing covered) + 10.00 x 1.10 = 11.00 late
        # -> 511.00; VAT 19% = 97.09; total 608.09
        assert october.total == D("608.09")
        assert docs["alpha"]["total_units"] == (await invoices.invoice("alpha:2024-09") or {}).get(
            "total_units"
        )  # the finalized invoice did not change

        # a JPY invoice (no minor units): 12,345.6 + 0.4 -> 12,346 yen, outside EU VAT
        yen = [
            rated(f"g{i}", "gamma", price=price, cost=price).model_copy(
                update={"currency": "JPY", "cost_currency": "JPY"}
            )
            for i, price in enumerate(["12345.6", "0.4"])
        ]
        await add_charges(invoices, [PositionedCharge(c) for c in yen])
        gamma = await close_invoice(ports, marker("gamma"))
        assert gamma.total == D("12346")

        # October issued (the subscription netted, the late line), a credit note on beta's
        # invoice (stored as Factur-X, which beta receives): then every document this test
        # issued, in the three e-invoice formats, through the Mustang validator (issue 17)
        assert (await close_invoice(ports, marker("alpha", "2024-10", date(2024, 11, 1)))).number
        settlement = SettlementPorts(
            catalog_repo,
            invoices,
            MongoSettlementRepository(mongo_db),
            events,
            CreditNotePdfPorts(pdfs, InvoicePdfStore(mongo_db)),
        )
        await MongoSettlementRepository(mongo_db).ensure_indexes()
        credited = await issue_credit_note(
            settlement,
            number="CCR-2024-000002",
            amount=D("73.01"),
            reason="Overage waived after review",
            issue_date=date(2024, 10, 20),
            correlation_id="acceptance",
        )
        assert credited.credit_note.pdf_file_id is not None
        checked = await validate_issued(mongo_db, tmp_path, "six_steps_e2e", expect=5)
        assert "CCR-CN-2024-000001-peppol.xml" in checked
        assert "CCR-2024-000002-stored.pdf" in checked
