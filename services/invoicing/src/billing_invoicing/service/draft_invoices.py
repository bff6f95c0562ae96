"""Use case: rated charges onto their invoices' drafts, a batch at a time.

Per batch: look up the invoices the charges belong to (a charge of an invoice no longer in draft
goes onto the customer's next open invoice, as a late line), store the charges once each, let
each ledger of open drafts count what it has not counted yet (``domain/model.py`` says how that
stays exact under redelivery), and save the ledgers that changed: at most ``LEDGERS`` writes,
however many customers the batch carries, all at once. The work is bounded by the batch, never
by what is already stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from billing_invoicing.domain.model import (
    Event,
    StoredCharge,
    StreamPosition,
    invoice_id_for,
    ledger_of,
    next_period,
    parse_invoice_id,
)
from billing_invoicing.ports import ChargeToStore, ConcurrentUpdateError, InvoiceRepository
from billing_schemas.events import RatedCharge

SAVE_ATTEMPTS = 5


@dataclass(frozen=True)
class PositionedCharge:
    """A rated charge and where it was read from (None outside the stream)."""

    charge: RatedCharge
    position: StreamPosition | None = None


async def open_invoice_after(invoices: InvoiceRepository, invoice_id: str) -> str:
    """The customer's first invoice after ``invoice_id``'s period that is still a draft (or does
    not exist yet)."""
    customer_id, period = parse_invoice_id(invoice_id)
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
    ledgers say was counted."""
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
    # a draft document for every invoice charged, so that lists show it from its first charge
    await invoices.create_drafts({c.invoice_id for c in to_store} - set(loaded))
    stored = await invoices.store_charges(to_store)

    through: dict[int, int] = {}
    for item in unique.values():
        if item.position is not None:
            p = item.position
            through[p.partition] = max(through.get(p.partition, -1), p.offset)
    # a charge stored on an invoice no longer in draft is in its frozen lines already (it was
    # stored before the invoice's close marker, in stream order): only drafts count
    statuses = await invoices.get_many({c.invoice_id for c in stored})
    open_charges: dict[int, list[StoredCharge]] = {}
    for charge in stored:
        found = statuses.get(charge.invoice_id)
        if found is None or found.is_draft:
            customer_id, _ = parse_invoice_id(charge.invoice_id)
            open_charges.setdefault(ledger_of(customer_id), []).append(charge)

    # each ledger is its own document, so they are written at once (a conflict on one makes
    # only that one read and count again)
    counts = [
        asyncio.ensure_future(_count_in_ledger(invoices, n, ledger_charges, through))
        for n, ledger_charges in sorted(open_charges.items())
    ]
    try:
        counted = await asyncio.gather(*counts)
    except BaseException:  # the first failure is raised as it is; the other writes stop
        for count in counts:
            count.cancel()
        raise
    return [event for events in counted for event in events]


async def _count_in_ledger(
    invoices: InvoiceRepository, n: int, charges: list[StoredCharge], through: dict[int, int]
) -> list[Event]:
    for _ in range(SAVE_ATTEMPTS):
        ledger = (await invoices.get_ledgers([n]))[n]
        events = ledger.add_charges(charges, through)
        if not events:
            return []  # nothing new: the ledger stays as it is (its marks too: see the model)
        try:
            await invoices.save_ledger(ledger)
        except ConcurrentUpdateError:
            # another writer moved it on (a rebalance): read it again and count again; the
            # counting rule makes that exact
            await invoices.forget_ledgers([n])
            continue
        return events
    msg = f"ledger {n} kept changing under this writer"
    raise RuntimeError(msg)
