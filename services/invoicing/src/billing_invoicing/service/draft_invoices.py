"""Use case: rated charges onto their invoices' drafts, a batch at a time.

Per batch: look up the invoices the charges belong to (a charge of an invoice no longer in draft
goes onto the customer's next open invoice, as a late line), store the charges once each, let
each draft count what it has not counted yet (``domain/model.py`` says how that stays exact under
redelivery), and save the drafts that changed. The work is bounded by the batch, never by what is
already stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from billing_invoicing.domain.model import (
    Event,
    Invoice,
    StoredCharge,
    StreamPosition,
    invoice_id_for,
    next_period,
)
from billing_invoicing.ports import ChargeToStore, InvoiceRepository
from billing_schemas.events import RatedCharge

log = logging.getLogger("billing.invoicing")

SAVE_ATTEMPTS = 5


@dataclass(frozen=True)
class PositionedCharge:
    """A rated charge and where it was read from (None outside the stream)."""

    charge: RatedCharge
    position: StreamPosition | None = None


async def open_invoice_after(invoices: InvoiceRepository, invoice_id: str) -> str:
    """The customer's first invoice after ``invoice_id``'s period that is still a draft (or does
    not exist yet)."""
    customer_id, period = invoice_id.rsplit(":", 1)
    while True:
        period = next_period(period)
        candidate = invoice_id_for(customer_id, period)
        found = await invoices.get(candidate)
        if found is None or found.is_draft:
            return candidate


async def add_charges(
    invoices: InvoiceRepository, charges: Sequence[PositionedCharge]
) -> list[Event]:
    """Put a batch of charges onto their drafts (see the module docstring); returns what the
    drafts say happened."""
    unique: dict[str, PositionedCharge] = {}
    for item in charges:  # the same charge twice in one batch: the first occurrence stands
        unique.setdefault(item.charge.charge_id, item)
    if not unique:
        return []
    own = {invoice_id_for(i.charge.customer_id, i.charge.billing_period) for i in unique.values()}
    loaded = await invoices.get_many(own)
    closed = sorted(i for i, inv in loaded.items() if not inv.is_draft)
    next_open = {i: await open_invoice_after(invoices, i) for i in closed}
    to_store = []
    for item in unique.values():
        invoice_id = invoice_id_for(item.charge.customer_id, item.charge.billing_period)
        late = invoice_id in next_open
        target = next_open[invoice_id] if late else invoice_id
        to_store.append(ChargeToStore(item.charge, target, late, item.position))
    stored = await invoices.store_charges(to_store)

    through: dict[int, int] = {}
    for item in unique.values():
        if item.position is not None:
            p = item.position
            through[p.partition] = max(through.get(p.partition, -1), p.offset)
    by_invoice: dict[str, list[StoredCharge]] = {}
    for charge in stored:
        by_invoice.setdefault(charge.invoice_id, []).append(charge)

    events: list[Event] = []
    pending = by_invoice
    for _ in range(SAVE_ATTEMPTS):
        found = await invoices.get_many(pending)
        changed: list[Invoice] = []
        for invoice_id, stored_here in sorted(pending.items()):
            invoice = found.get(invoice_id) or Invoice.new(invoice_id)
            if not invoice.is_draft:
                uncounted = [c.amounts.charge_id for c in stored_here if invoice.counts(c)]
                if uncounted:  # cannot happen in stream order; said loudly if it ever does
                    log.error("%s is %s but has uncounted charges %s",
                              invoice_id, invoice.status, uncounted[:5])  # fmt: skip
                continue
            happened = invoice.add_charges(stored_here, through)
            if happened:
                events += happened
                changed.append(invoice)
        conflicts = await invoices.save_all(changed)
        if not conflicts:
            return events
        # another writer moved these on (a rebalance): read them again and count again; the
        # counting rule makes that exact
        await invoices.forget(conflicts)
        events = [e for e in events if getattr(e, "invoice_id", None) not in conflicts]
        pending = {i: by_invoice[i] for i in conflicts}
    msg = f"drafts {sorted(pending)} kept changing under this writer"
    raise RuntimeError(msg)
