"""Invoicing's flow, written once and run twice (the ``flow`` fixture): in memory, and on the
real broker. Rated charges onto the draft; a close command puts a marker into the charge stream
behind them; the marker finalizes, numbers and renders the invoice, announced once; what is not
a charge is dead-lettered with the reason."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from invoicing_test_support import SETTLE_CATALOG, rated
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.app import build
from billing_invoicing.settings import InvoicingSettings
from billing_schemas.channels import CHARGE_RATED, INVOICE_FINALIZED, INVOICES_GENERATE
from billing_schemas.events import (
    ChargeRated,
    GenerateInvoices,
    GenerateInvoicesCommand,
    InvoiceFinalized,
    PeriodClosing,
)

if TYPE_CHECKING:
    from conftest import FlowBroker, Infra

pytestmark = pytest.mark.integration


async def test_charges_then_a_close_command_issue_one_invoice_of_their_sum(
    flow: FlowBroker, infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await MongoCatalogRepository(mongo_db).apply(SETTLE_CATALOG)
    settings = InvoicingSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=namespace,
        topic_namespace=flow.namespace,
        pdf_workers=1,
    )
    await flow.serve(build(settings, flow.publisher()))
    ns = flow.namespace

    charges = [
        ChargeRated.create(rated(cid, "alpha", price=price), source="t", correlation_id="bill-1")
        for cid, price in (("c-1", "10.00"), ("c-2", "5.00"), ("c-1", "10.00"))  # c-1 twice
    ]
    await flow.publish(CHARGE_RATED, charges)
    await flow.publish_raw(CHARGE_RATED, b"alpha", b'{"event_type": "charge.rated"}')
    command = GenerateInvoicesCommand(period="2024-09", customer_id="alpha")
    await flow.publish(
        INVOICES_GENERATE, [GenerateInvoices.create(command, source="t", correlation_id="close")]
    )

    [announced] = await flow.read(INVOICE_FINALIZED.name(ns), 1)
    invoice = InvoiceFinalized.model_validate_json(announced.value).data
    assert announced.key == b"alpha"
    assert (invoice.customer_id, invoice.period) == ("alpha", "2024-09")
    assert invoice.invoice_number.startswith("CCR-")
    assert invoice.invoice_number.endswith("-000001")
    # each charge once (c-1 came twice), 19 % VAT on the subtotal
    assert (invoice.subtotal, invoice.tax, invoice.total) == (
        Decimal("15.00"),
        Decimal("2.85"),
        Decimal("17.85"),
    )
    assert dict(announced.headers)["correlation_id"] == b"close"

    stream = await flow.read(CHARGE_RATED.name(ns), len(charges) + 2)
    markers = [r for r in stream if dict(r.headers).get("event-type") == b"period.closing"]
    assert [PeriodClosing.model_validate_json(r.value).data.customer_id for r in markers] == [
        "alpha"
    ]
    [dead] = await flow.read(CHARGE_RATED.dead_letter_name(ns), 1)
    assert dead.value == b'{"event_type": "charge.rated"}'
    assert b"validation failed" in dict(dead.headers)["x-error"]
    assert dict(dead.headers)["x-failed-by"] == b"invoicing"
