"""What the invoicing API records in the audit trail (service/audit_entries.py), on FerretDB:
contacts with before/after, the catalog and its price-list versions, payments and credit notes
with their stable ids."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from test_invoicing_http_api import ALPHA, CATALOG, OPERATOR, TOKENS

from billing_catalog.models import Catalog
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.contacts_repo import MongoContactBook
from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceEvents
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.access import parse_tokens
from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.entrypoints.http import invoicing_api
from billing_invoicing.service import audit_entries
from billing_invoicing.service.generate_invoices import InvoicingPorts
from billing_invoicing.service.invoice_queries import QueryPorts
from billing_invoicing.service.settle_invoices import (
    CreditNoteOutcome,
    PaymentOutcome,
    SettlementPorts,
)
from billing_runtime.access import token_name
from billing_runtime.audit import InMemoryAuditTrail
from billing_schemas.events import CreditNote, Payment


@dataclass
class Audited:
    client: httpx.AsyncClient
    trail: InMemoryAuditTrail

    async def call(self, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        return await self.client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, **kw
        )


@pytest.fixture
async def audited(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncIterator[Audited]:
    catalog = MongoCatalogRepository(mongo_db)
    await catalog.apply(Catalog.model_validate(CATALOG))
    invoices = MongoInvoiceRepository(mongo_db)
    events = InMemoryInvoiceEvents()
    settlement = SettlementPorts(catalog, invoices, MongoSettlementRepository(mongo_db), events)
    trail = InMemoryAuditTrail()

    class NoRenderer:
        async def render(self, invoice: Any) -> bytes:
            raise AssertionError("nothing is rendered here")

    app = invoicing_api(
        tokens=parse_tokens(TOKENS),
        queries=QueryPorts(invoices, settlement, None),  # type: ignore[arg-type]
        invoicing=InvoicingPorts(catalog, invoices, NoRenderer(), None, events),  # type: ignore[arg-type]
        contacts=MongoContactBook(mongo_db),
        audit=trail,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://invoicing") as client:
        yield Audited(client, trail)


@pytest.mark.integration
async def test_contact_changes_are_recorded_with_who_and_before_after(audited: Audited) -> None:
    path = "/v1/customers/alpha/contacts"
    added = await audited.call("POST", path, ALPHA, json={"email": "ap@alpha.example"})
    assert added.status_code == 201, added.text
    changed = await audited.call(
        "PATCH", f"{path}/tech@alpha.example", OPERATOR, json={"roles": ["Tech"]}
    )
    assert changed.status_code == 200, changed.text
    removed = await audited.call("DELETE", f"{path}/ap@alpha.example", ALPHA)
    assert removed.status_code == 204
    refused = await audited.call("DELETE", "/v1/customers/beta/contacts/ap@beta.example", ALPHA)
    assert refused.status_code == 404
    entries = [entry for _, entry in audited.trail.entries]
    assert [e.action for e in entries] == ["contact.added", "contact.changed", "contact.removed"]
    assert [e.actor for e in entries] == [
        token_name(ALPHA),
        token_name(OPERATOR),
        token_name(ALPHA),
    ]
    assert all(e.customer_id == "alpha" and e.subject == "customer:alpha" for e in entries)
    add, change, remove = entries
    assert add.before is None
    assert add.after is not None
    assert add.after["email"] == "ap@alpha.example"
    assert change.before is not None
    assert change.after is not None
    assert change.before["roles"] == ["Tech", "DPO"]
    assert change.after["roles"] == ["Tech"]
    assert remove.before is not None
    assert remove.before["email"] == "ap@alpha.example"
    assert remove.after is None


@pytest.mark.integration
async def test_the_catalog_and_each_changed_price_list_are_recorded(audited: Audited) -> None:
    same = await audited.call("PUT", "/v1/catalog", OPERATOR, json=CATALOG)
    assert same.status_code == 200, same.text
    assert [e.action for _, e in audited.trail.entries] == ["catalog.applied"]
    changed: dict[str, Any] = copy.deepcopy(CATALOG)
    changed["price_lists"][0]["versions"].append({"version": 2, "effective_from": "2099-01-01"})
    answer = await audited.call("PUT", "/v1/catalog", OPERATOR, json=changed)
    assert answer.status_code == 200, answer.text
    [(_, first), (_, applied), (version_id, versions)] = audited.trail.entries
    assert applied.action == "catalog.applied"
    assert applied.after is not None
    assert applied.after["price_lists"] == 1
    assert first.after is not None
    assert applied.after["sha256"] != first.after["sha256"]
    assert versions.action == "price_list.versions_changed"
    assert versions.subject == "price_list:p"
    assert versions.before is not None
    assert versions.after is not None
    assert [v["version"] for v in versions.before["versions"]] == [1]
    assert [v["version"] for v in versions.after["versions"]] == [1, 2]
    assert version_id is not None
    assert version_id.startswith("price-list:p:")
    refused = await audited.call("PUT", "/v1/catalog", ALPHA, json=CATALOG)
    assert refused.status_code == 403
    assert len(audited.trail.entries) == 3


def test_payments_and_credit_notes_are_recorded_under_their_own_ids() -> None:
    payment = Payment(
        payment_id="pay-1",
        invoice_id="alpha:2024-09",
        invoice_number="CCR-2024-000001",
        customer_id="alpha",
        amount=Decimal("30.90"),
        currency="EUR",
        method="Card",
        reference="R-1",
        paid_on=date(2024, 10, 5),
        outstanding_after=Decimal("100.00"),
    )
    audit_id, entry = audit_entries.payment_recorded(
        PaymentOutcome(payment, InvoiceStatus.FINALIZED, Decimal(0), already_recorded=False),
        "cli:alice",
    )
    assert audit_id == "payment:pay-1"
    assert entry.actor == "cli:alice"
    assert entry.before == {"outstanding": "130.90"}
    assert entry.after is not None
    assert entry.after["amount"] == "30.90"
    assert entry.after["outstanding_after"] == "100.00"
    note = CreditNote(
        credit_note_id="cn-1",
        credit_note_number="CCR-CN-2024-000001",
        invoice_id="alpha:2024-09",
        invoice_number="CCR-2024-000001",
        customer_id="alpha",
        customer_name="Alpha GmbH",
        issue_date=date(2024, 10, 6),
        currency="EUR",
        total=Decimal("100.00"),
        reason="cancelled order",
    )
    outcome = CreditNoteOutcome(note, InvoiceStatus.VOID, Decimal(0), already_issued=False)
    void_id, voided = audit_entries.credit_note_issued(outcome, "cli:alice", void=True)
    assert void_id == "invoice.voided:cn-1"
    assert voided.action == "invoice.voided"
    assert "cancelled order" in voided.summary
    credit_id, credited = audit_entries.credit_note_issued(outcome, "cli:alice", void=False)
    assert credit_id == "credit_note.issued:cn-1"
    assert credited.after is not None
    assert credited.after["total"] == "100.00"


async def test_a_one_off_charge_is_recorded_once_with_who_added_it(audited: Audited) -> None:
    body = {"period": "2024-11", "description": "Setup fee", "quantity": "2", "unit_price": "75"}
    first = await audited.call("POST", "/v1/customers/alpha/charges", OPERATOR, json=body)
    assert first.status_code == 202, first.text  # nothing consumes the charge stream here
    [(audit_id, entry)] = [(i, e) for i, e in audited.trail.entries if e.action == "charge.added"]
    assert audit_id == f"charge.added:{first.json()['charge_id']}"
    assert (entry.actor, entry.customer_id) == (token_name(OPERATOR), "alpha")
    assert entry.after is not None
    assert (entry.after["quantity"], entry.after["amount"]) == ("2", "150")
