"""Invoices (the aggregate of ``domain/model.py``), rated charges and invoice numbers in
MongoDB / FerretDB.

Only single-document atomic writes are used (FerretDB has no transactions), and each step is
safe to repeat, so a crash at any point is recovered by running the same step again:

* a charge is stored once under its charge id, with the invoice it went on and the stream
  position it was first stored from; redelivery finds it there (``store_charges`` says so);
* the running sums of open drafts are kept in ``LEDGERS`` ledger documents (see
  ``domain/model.py`` for the counting rule), each written once per batch that touches it: a
  single-document update costs ~10 ms on FerretDB whatever its size, and ~100 us per document
  inserted in bulk, so a batch pays per ledger, not per customer (bulk updates are not an option:
  FerretDB v1.24 hangs on an update command of 100 statements or more);
* an invoice is one document written by :meth:`MongoInvoiceRepository.save`, guarded by its
  version number. Hot reads and writes go by ``_id`` only, the one filter every FerretDB backend
  answers from an index, so the work per batch does not grow with the number of stored charges;
* a number is claimed by inserting ``<entity>:<year>:<seq>`` with a unique ``invoice_id``:
  the sequence is gapless (seq n+1 is only tried once n exists) and a retry finds its own claim;
* an issued invoice's settlement (payments, credit notes, void, overdue) has several writers,
  so its writes are guarded by the version without a filter FerretDB would answer by a scan:
  :meth:`MongoInvoiceRepository.save_settlement` first inserts the write itself under
  ``<invoice id>@<next version>`` (a unique ``_id``: of two writers from the same version, one
  fails), then applies it by ``_id``; a reader that finds the next version's write stored but
  not applied (a crash in between) applies it before deciding anything.

The consumer of a customer's partition of the charge stream is the only writer of that
customer's drafts, so loaded invoices and ledgers are kept (a bounded copy per id) and re-read
only after a version conflict.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from bson import Binary
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from billing_invoicing.adapters.invoice_keys import InvoiceKeys, KeyFilter
from billing_invoicing.adapters.invoice_rows import InvoiceRows, row_of
from billing_invoicing.adapters.stored_rows import charge_line_of, draft_line_of
from billing_invoicing.domain.invoice import (
    InvoiceDocument,
    InvoiceStatus,
    charge_kind,
)
from billing_invoicing.domain.model import (
    ChargeAmounts,
    CurrencySum,
    DraftLedger,
    DraftLine,
    DraftSums,
    Invoice,
    LineKey,
    StoredCharge,
    StreamPosition,
    ledger_of,
    next_period,
    parse_invoice_id,
)
from billing_invoicing.domain.settlement import OPEN_STATUSES
from billing_invoicing.domain.stored import ChargeLine
from billing_invoicing.domain.units import AmountNotStorableError, from_units, to_units
from billing_invoicing.ports import ChargeToStore, ConcurrentUpdateError
from billing_runtime.mongo import NUL_STORED_AS, sum_by, without_nul
from billing_schemas.events import ChargeCategory, LineType, RatedCharge
from billing_schemas.money import round_to_minor

CHARGES = "invoicing_charges"
INVOICES = "invoicing_invoices"
LEDGERS = "invoicing_draft_ledgers"
NUMBERS = "invoicing_numbers"
SETTLEMENT_WRITES = "invoicing_settlement_writes"
CUSTOMER_CREDITS = "invoicing_customer_credits"
CREDIT_BALANCES = "invoicing_credit_balances"
CACHED_INVOICES = 20_000
"""Invoices kept loaded (a few KB each): more than the open drafts of one consumer's customers."""
CONCURRENT_WRITES = 8
"""Single-document writes in flight at once (FerretDB serializes them on SQLite anyway)."""
CHARGE_INSERT_CHUNK = 500
"""Charge documents per insert command (a batch of charges is several of them)."""
CONCURRENT_INSERTS = 8
"""Charge inserts in flight at once. Measured on the local FerretDB over PostgreSQL (2 cores,
loaded): 5,000 charges as one insert ~1,100 documents/s, in 4 concurrent inserts ~1,900/s, in 8
~2,100/s, in 16 ~2,600/s (noisy): beyond a few, they wait on the same cores."""
STORED_LOOKUPS = 32
"""Charges met again in a batch (redelivered, or published twice) read back by ``_id`` at once."""

Doc = dict[str, Any]

__all__ = ["CHARGES", "INVOICES", "NUMBERS", "MongoInvoiceRepository", "next_period"]


def savings_removed(charge: RatedCharge) -> Decimal:
    """What savings removal kept on a charge: on-demand price minus billed cost, converted.

    Rating charges usage covered by a payer-bought commitment at its on-demand cost (basis
    ``on-demand cost`` on a ``commitment_covered`` line); the difference to the billed cost is
    the saving the reseller keeps (step 4 of the invoice, shown on it).
    """
    if (
        charge.line_type is not LineType.COMMITMENT_COVERED
        or charge.basis != "on-demand cost"
        or charge.basis_amount is None
    ):
        return Decimal(0)
    return (charge.basis_amount - charge.cost) * (charge.fx_rate or Decimal(1))


def as_stored(amount: Decimal, currency: str) -> Decimal:
    """An amount as a charge stores it (to its currency's unit, half-even: ``domain/units.py``):
    draft sums add these, so they equal a sum over the stored charges exactly."""
    return from_units(to_units(amount, currency), currency)


def charge_amounts(charge: RatedCharge) -> ChargeAmounts:
    """What a charge adds to its invoice line."""
    kind = charge_kind(charge.charge_category, charge.line_type, charge.charge_class)
    return ChargeAmounts(
        charge_id=charge.charge_id,
        key=(charge.billing_period, charge.provider, charge.service_name, kind.value),
        currency=charge.currency,
        cost=as_stored(charge.cost, charge.cost_currency),
        price=as_stored(charge.price, charge.currency),
        savings_removed=as_stored(savings_removed(charge), charge.currency),
    )


def amounts_of_document(doc: Doc) -> ChargeAmounts:
    """What a stored charge adds to its invoice line."""
    currency = str(doc["currency"])
    kind = charge_kind(
        ChargeCategory(doc.get("charge_category", "usage")),
        LineType(doc.get("line_type", "on_demand")),
        doc.get("charge_class"),
    )
    return ChargeAmounts(
        charge_id=str(doc["_id"]),
        key=(str(doc["period"]), str(doc["provider"]), str(doc["service_name"]), kind.value),
        currency=currency,
        cost=from_units(int(doc["cost_units"]), str(doc.get("cost_currency") or currency)),
        price=from_units(int(doc["price_units"]), currency),
        savings_removed=from_units(int(doc.get("savings_removed_units", 0)), currency),
    )


def charge_document(charge: RatedCharge, invoice_id: str) -> Doc:
    """A rated charge as stored: money as integers of its currency's unit (``domain/units.py``;
    :class:`AmountNotStorableError` beyond int64), quantities as strings."""
    return {
        "invoice_id": invoice_id,
        "customer_id": charge.customer_id,
        "period": charge.billing_period,
        "provider": charge.provider,
        "sub_account_id": charge.sub_account_id,
        "service_name": charge.service_name,
        "sku_id": charge.sku_id,
        "description": charge.description,
        "region": charge.region,
        "charge_category": charge.charge_category.value,
        "line_type": charge.line_type.value,
        "charge_class": charge.charge_class,
        "charge_period_start": charge.charge_period_start,
        "quantity": None if charge.quantity is None else format(charge.quantity, "f"),
        "unit": charge.unit,
        "cost_units": to_units(charge.cost, charge.cost_currency),
        "cost_currency": charge.cost_currency,
        "price_units": to_units(charge.price, charge.currency),
        "margin_units": to_units(charge.margin, charge.currency),
        "currency": charge.currency,
        "savings_removed_units": to_units(savings_removed(charge), charge.currency),
        "fx_rate": None if charge.fx_rate is None else format(charge.fx_rate, "f"),
        "basis": charge.basis,
        "rule": charge.rule,
        "price_list_id": charge.price_list_id,
        "price_list_version": charge.price_list_version,
        "record_id": charge.record_id,
        "charge_period_end": charge.charge_period_end,
        "sub_account_name": charge.sub_account_name,
        "service_category": charge.service_category,
        "sku_price_id": charge.sku_price_id,
        "list_price_units": (
            None if charge.list_cost is None else to_units(charge.list_cost, charge.currency)
        ),
        "late": False,
        "received_at": datetime.now(UTC),
    }


def _stored_id(item: ChargeToStore) -> str:
    """The ``_id`` a charge is stored under (its id, U+0000 replaced as in every string)."""
    return item.charge.charge_id.replace("\x00", NUL_STORED_AS)


def _stored_charge_document(item: ChargeToStore) -> Doc:
    """What is inserted for a charge: its document under its id, with where it went and the
    stream position it was read from (U+0000 replaced: PostgreSQL's JSONB refuses it)."""
    doc = without_nul({"_id": _stored_id(item), **charge_document(item.charge, item.invoice_id)})
    doc["late"] = item.late
    if item.position is not None:
        doc["stream_partition"] = item.position.partition
        doc["stream_offset"] = item.position.offset
    return doc


def _claim_id(entity: str, year: int, seq: int) -> str:
    return f"{entity}:{year}:{seq:09d}"


def _position_of(doc: Doc) -> StreamPosition | None:
    partition = doc.get("stream_partition")
    if partition is None:
        return None
    return StreamPosition(int(partition), int(doc["stream_offset"]))


def _units_if_storable(amount: Decimal, currency: str | None) -> int | None:
    try:
        return to_units(amount, currency)
    except AmountNotStorableError:
        return None  # the exact string beside it is what counts


def _line_document(line: DraftLine, currency: str | None) -> Doc:
    return {
        "period": line.period,
        "provider": line.provider,
        "service_name": line.service_name,
        "kind": line.kind,
        "charge_count": line.charge_count,
        "cost": format(line.cost, "f"),
        "price": format(line.price, "f"),
        "savings_removed": format(line.savings_removed, "f"),
        # the same sums in stored units of the draft's currency (None beyond int64): the exact
        # strings above are what readers take
        "cost_units": _units_if_storable(line.cost, currency),
        "price_units": _units_if_storable(line.price, currency),
    }


def _lines_document(lines: Mapping[LineKey, DraftLine], currency: str | None) -> list[Doc]:
    return [_line_document(line, currency) for _, line in sorted(lines.items())]


def _ledger_id(ledger: int) -> str:
    return f"ledger:{ledger:03d}"


def ledger_of_document(doc: Doc) -> DraftLedger:
    """A ledger from its stored document."""
    return DraftLedger(
        ledger=int(doc["ledger"]),
        drafts={
            str(d["invoice_id"]): DraftSums(
                lines={line.key: line for line in map(draft_line_of, d["lines"])},
                currency=d.get("currency"),
                by_currency={
                    str(g["currency"]): CurrencySum(int(g["count"]), Decimal(g["price"]))
                    for g in d.get("by_currency") or []
                },
            )
            for d in _drafts_of(doc.get("drafts", []))
        },
        counted_through={int(p): int(o) for p, o in (doc.get("counted_through") or {}).items()},
        version=int(doc["version"]),
    )


def _drafts_of(stored: Any) -> list[Doc]:
    if isinstance(stored, bytes):  # packed (see ledger_document)
        drafts: list[Doc] = orjson.loads(zlib.decompress(stored))
        return drafts
    return list(stored)


def ledger_document(ledger: DraftLedger) -> Doc:
    """What a ledger stores. Its drafts are packed (JSON, zlib) into one binary field: FerretDB
    decodes every ledger to apply a version-guarded update, and a binary field costs it a copy
    where ~200 KB of nested documents cost it ~0.3 s per update."""
    drafts = [
        {
            "invoice_id": i,
            "currency": d.currency,
            "lines": _lines_document(d.lines, d.currency),
            "by_currency": [
                {"currency": c, "count": s.count, "price": format(s.price, "f")}
                for c, s in sorted(d.by_currency.items())
            ],
        }
        for i, d in sorted(ledger.drafts.items())
    ]
    return {
        "ledger": ledger.ledger,
        "drafts": Binary(zlib.compress(orjson.dumps(drafts), 1)),
        "counted_through": {str(p): o for p, o in sorted(ledger.counted_through.items())},
        "updated_at": datetime.now(UTC),
    }


def invoice_of(doc: Doc) -> Invoice:
    """The aggregate from its stored document."""
    customer_id, period = parse_invoice_id(str(doc["_id"]))
    # a draft's lines are in its ledger; a frozen invoice's are its own
    status = InvoiceStatus(doc["status"])
    lines = (
        []
        if status is InvoiceStatus.DRAFT
        else [draft_line_of(x) for x in doc.get("draft_lines", [])]
    )
    document = doc.get("document")
    issue_date = doc.get("issue_date")
    return Invoice(
        invoice_id=str(doc["_id"]),
        customer_id=str(doc.get("customer_id", customer_id)),
        period=str(doc.get("period", period)),
        status=status,
        lines={line.key: line for line in lines},
        currency=doc.get("currency"),
        issue_date=None if issue_date is None else date.fromisoformat(issue_date),
        number=doc.get("number"),
        seq=doc.get("seq"),
        document=None if document is None else InvoiceDocument.model_validate(document),
        pdf_file_id=doc.get("pdf_file_id"),
        pdf_sha256=doc.get("pdf_sha256"),
        # documents written before versions were kept count as version 1
        version=int(doc.get("version", 1)),
        **settlement_state(doc),
    )


def _amount(units: Any, currency: str | None) -> Decimal:
    if not units:
        return Decimal(0)
    amount = from_units(int(units), currency)
    return amount if currency is None else round_to_minor(amount, currency)


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value)[:10])


def settlement_state(doc: Doc) -> dict[str, Any]:
    """The aggregate's settlement fields from its stored document (none before it is issued)."""
    currency = doc.get("currency")
    return {
        "paid": _amount(doc.get("paid_units"), currency),
        "credited": _amount(doc.get("credited_units"), currency),
        "payment_ids": [str(i) for i in doc.get("payment_ids") or []],
        "credit_note_ids": [str(i) for i in doc.get("credit_note_ids") or []],
        "voided_on": _day(doc.get("voided_at")),
        "overdue_since": _day(doc.get("overdue_since")),
        "settled_by": doc.get("settled_by"),
        "paid_announced_at": doc.get("paid_announced_at"),
        "voided_announced_at": doc.get("voided_announced_at"),
        "credit_applied": (
            None if doc.get("credit_applied") is None else Decimal(doc["credit_applied"])
        ),
    }


def settlement_fields(invoice: Invoice) -> Doc:
    """What a settlement write stores (the issued document and its lines are never among
    them): money as units of the invoice's currency, like everything else."""
    currency = invoice.currency_issued
    standing = invoice.standing()
    return {
        "status": invoice.status.value,
        "paid_units": to_units(invoice.paid, currency),
        "credited_units": to_units(invoice.credited, currency),
        "outstanding_units": to_units(standing.outstanding, currency),
        "payment_ids": list(invoice.payment_ids),
        "credit_note_ids": list(invoice.credit_note_ids),
        "voided_at": None if invoice.voided_on is None else invoice.voided_on.isoformat(),
        "overdue_since": (
            None if invoice.overdue_since is None else invoice.overdue_since.isoformat()
        ),
        "settled_by": invoice.settled_by,
        "paid_announced_at": invoice.paid_announced_at,
        "voided_announced_at": invoice.voided_announced_at,
        "settled_at": datetime.now(UTC),
    }


def invoice_fields(invoice: Invoice) -> Doc:
    """What the aggregate owns of its stored document (settlement fields are not among them)."""
    fields: Doc = {
        "customer_id": invoice.customer_id,
        "period": invoice.period,
        "status": invoice.status.value,
        "currency": invoice.currency,
        "draft_lines": _lines_document(invoice.lines, invoice.currency),
        "issue_date": None if invoice.issue_date is None else invoice.issue_date.isoformat(),
        "seq": invoice.seq,
        "credit_applied": None if invoice.credit_applied is None else str(invoice.credit_applied),
        "updated_at": datetime.now(UTC),
    }
    document = invoice.document
    if document is not None:
        fields |= {
            "number": invoice.number,
            "currency": document.currency,
            "due_date": document.due_date.isoformat() if document.due_date else None,
            "subtotal_units": to_units(document.subtotal, document.currency),
            "tax_units": to_units(document.tax, document.currency),
            "total_units": to_units(document.total, document.currency),
            "outstanding_units": to_units(document.outstanding, document.currency),
            "document": document.model_dump(mode="json"),
            "pdf_file_id": invoice.pdf_file_id,
            "pdf_sha256": invoice.pdf_sha256,
            "finalized_at": datetime.now(UTC),
        }
    return fields


class MongoInvoiceRepository:
    """Charges, invoices and number claims (see the module docstring)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._charges = db[CHARGES]
        self._invoices = db[INVOICES]
        self._numbers = db[NUMBERS]
        self._ledgers = db[LEDGERS]
        self._credits = db[CUSTOMER_CREDITS]
        self._settlement_writes = db[SETTLEMENT_WRITES]
        self._credit_balances = db[CREDIT_BALANCES]
        self._loaded: OrderedDict[str, Invoice] = OrderedDict()
        self._loaded_ledgers: dict[int, DraftLedger] = {}
        self._writes = asyncio.Semaphore(CONCURRENT_WRITES)
        self._inserts = asyncio.Semaphore(CONCURRENT_INSERTS)
        self._last_seq: dict[tuple[str, int], int] = {}
        self._rows = InvoiceRows(db)
        self._keys = InvoiceKeys(db, INVOICES, self._rows)

    async def ensure_indexes(self) -> None:
        """Indexes every query here relies on (idempotent), and the invoice list's keys of
        invoices stored before they were kept (``adapters/invoice_keys.py``; once)."""
        await self._keys.rebuild()
        await self._charges.create_index([("invoice_id", ASCENDING)])
        await self._charges.create_index([("period", ASCENDING), ("customer_id", ASCENDING)])
        await self._numbers.create_index([("invoice_id", ASCENDING)], unique=True)
        await self._numbers.create_index(
            [("entity", ASCENDING), ("year", ASCENDING), ("seq", DESCENDING)]
        )
        await self._invoices.create_index([("period", ASCENDING), ("status", ASCENDING)])

    # --- the aggregate --------------------------------------------------------------------

    def _keep(self, invoice: Invoice) -> None:
        self._loaded[invoice.invoice_id] = copy.deepcopy(invoice)
        self._loaded.move_to_end(invoice.invoice_id)
        while len(self._loaded) > CACHED_INVOICES:
            self._loaded.popitem(last=False)

    async def get(self, invoice_id: str) -> Invoice | None:
        """The invoice, or None if it has no document yet."""
        kept = self._loaded.get(invoice_id)
        if kept is not None:
            return copy.deepcopy(kept)
        async with self._writes:
            doc = await self._invoices.find_one({"_id": invoice_id})
        if doc is None:
            return None
        invoice = invoice_of(doc)
        self._keep(invoice)
        return invoice

    async def get_many(self, invoice_ids: Iterable[str]) -> dict[str, Invoice]:
        """Those of the invoices that exist, by id (one ``_id`` look-up each)."""
        ids = sorted(set(invoice_ids))
        found = await asyncio.gather(*(self.get(i) for i in ids))
        return {i: inv for i, inv in zip(ids, found, strict=True) if inv is not None}

    async def forget(self, invoice_ids: Iterable[str]) -> None:
        """Drop the kept copies of these invoices."""
        for invoice_id in invoice_ids:
            self._loaded.pop(invoice_id, None)

    async def save(self, invoice: Invoice) -> None:
        """Write the aggregate's fields (its first write inserts it; another first write finds
        it there: :class:`ConcurrentUpdateError`).

        Later writes go by ``_id`` alone, unguarded: a version in the filter would make FerretDB
        read every invoice ever stored to apply it (its SQLite backend answers nothing but
        ``_id`` equality itself; ``test_invoicing_hot_queries``). That is sound because one
        writer decides an invoice's content: the consumer that owns its customer's partition
        of the charge stream, in stream order, and what it writes is derived from that stream
        (a second consumer after a rebalance writes the same). The ledgers, where two writers'
        counts would add up wrongly, are guarded by their version (16 documents to read).
        """
        fields = invoice_fields(invoice)
        kept = self._loaded.get(invoice.invoice_id)
        if invoice.version == 0:
            await self._keys.add_invoices([invoice.invoice_id])
        document = invoice.document
        if document is not None and invoice.number and (kept is None or kept.document is None):
            await self._keys.add_issued(invoice.invoice_id, invoice.number, document.total)
        if document is not None:  # its list row, before the write (adapters/invoice_rows.py)
            credited = to_units(invoice.credited, invoice.currency_issued)
            await self._write_row(fields | {"credited_units": credited}, invoice)
        async with self._writes:
            if invoice.version == 0:
                try:
                    await self._invoices.insert_one(
                        {"_id": invoice.invoice_id, **fields, "version": 1,
                         "created_at": datetime.now(UTC)}
                    )  # fmt: skip
                except DuplicateKeyError:
                    self._loaded.pop(invoice.invoice_id, None)
                    raise ConcurrentUpdateError(invoice.invoice_id) from None
            else:
                result = await self._invoices.update_one(
                    {"_id": invoice.invoice_id}, {"$set": fields, "$inc": {"version": 1}}
                )
                if result.matched_count == 0:
                    self._loaded.pop(invoice.invoice_id, None)
                    raise ConcurrentUpdateError(invoice.invoice_id)
        invoice.version += 1
        self._keep(invoice)

    async def _write_row(self, fields: Doc, invoice: Invoice) -> None:
        """The list row of the invoice as its next write stores it (with ``fields``)."""
        row = row_of({"_id": invoice.invoice_id, **fields, "version": invoice.version + 1})
        if row is not None:
            await self._rows.write([row])

    async def create_drafts(self, invoice_ids: Iterable[str]) -> None:
        """Give these invoices a draft document if they have none (in one insert)."""
        new = [Invoice.new(i) for i in sorted(set(invoice_ids)) if i not in self._loaded]
        if not new:
            return
        now = datetime.now(UTC)
        docs = [
            {"_id": i.invoice_id, **invoice_fields(i), "version": 1, "created_at": now} for i in new
        ]
        await self._keys.add_invoices(i.invoice_id for i in new)
        try:
            await self._invoices.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            existing = {docs[int(e["index"])]["_id"] for e in exc.details["writeErrors"]}
            await self.forget(existing)
            new = [i for i in new if i.invoice_id not in existing]
        for invoice in new:
            invoice.version = 1
            self._keep(invoice)

    # --- ledgers of open drafts -----------------------------------------------------------

    async def get_ledgers(self, ledgers: Iterable[int]) -> dict[int, DraftLedger]:
        """The ledgers (an empty one where none is stored yet)."""
        result = {}
        for n in sorted(set(ledgers)):
            kept = self._loaded_ledgers.get(n)
            if kept is None:
                doc = await self._ledgers.find_one({"_id": _ledger_id(n)})
                kept = DraftLedger(ledger=n) if doc is None else ledger_of_document(doc)
                self._loaded_ledgers[n] = kept
            result[n] = copy.deepcopy(kept)
        return result

    async def save_ledger(self, ledger: DraftLedger) -> None:
        """Write the ledger if the stored version is the loaded one (else
        :class:`ConcurrentUpdateError`)."""
        fields = ledger_document(ledger)
        if ledger.version == 0:
            try:
                await self._ledgers.insert_one(
                    {"_id": _ledger_id(ledger.ledger), **fields, "version": 1}
                )
            except DuplicateKeyError:
                self._loaded_ledgers.pop(ledger.ledger, None)
                raise ConcurrentUpdateError(_ledger_id(ledger.ledger)) from None
        else:
            result = await self._ledgers.update_one(
                {"_id": _ledger_id(ledger.ledger), "version": ledger.version},
                {"$set": {**fields, "version": ledger.version + 1}},
            )
            if result.matched_count == 0:
                self._loaded_ledgers.pop(ledger.ledger, None)
                raise ConcurrentUpdateError(_ledger_id(ledger.ledger))
        ledger.version += 1
        self._loaded_ledgers[ledger.ledger] = copy.deepcopy(ledger)

    async def forget_ledgers(self, ledgers: Iterable[int]) -> None:
        """Drop the kept copies of these ledgers."""
        for n in ledgers:
            self._loaded_ledgers.pop(n, None)

    async def draft_sums(self, invoice_id: str) -> DraftSums | None:
        """A draft's running sums, as its ledger holds them."""
        customer_id, _ = parse_invoice_id(invoice_id)
        n = ledger_of(customer_id)
        ledger = (await self.get_ledgers([n]))[n]
        return ledger.drafts.get(invoice_id)

    async def with_draft_lines(self, docs: list[Doc]) -> list[Doc]:
        """Invoice documents as readers see them: a draft's ``draft_lines`` (and currency) from
        its ledger, read fresh (one look-up per ledger)."""
        drafts = [d for d in docs if d.get("status") == InvoiceStatus.DRAFT.value]
        wanted = {ledger_of(str(d["customer_id"])) for d in drafts}
        ledgers = {}
        for n in sorted(wanted):
            doc = await self._ledgers.find_one({"_id": _ledger_id(n)})
            ledgers[n] = DraftLedger(ledger=n) if doc is None else ledger_of_document(doc)
        for d in drafts:
            sums = ledgers[ledger_of(str(d["customer_id"]))].drafts.get(str(d["_id"]))
            d["draft_lines"] = [] if sums is None else _lines_document(sums.lines, sums.currency)
            if sums is not None and sums.currency:
                d["currency"] = sums.currency
        return docs

    # --- charges --------------------------------------------------------------------------

    async def store_charges(self, charges: Sequence[ChargeToStore]) -> list[StoredCharge]:
        """Store each charge once under its id (see the module docstring).

        The documents are built first (an amount that cannot be stored stops the batch before
        anything is written), then go out as inserts of :data:`CHARGE_INSERT_CHUNK` documents,
        up to :data:`CONCURRENT_INSERTS` in flight: FerretDB serves one insert command on one
        connection, so the parts of a batch inserted at once go about twice as fast as the
        whole batch in one command (measured: :data:`CONCURRENT_INSERTS`)."""
        if not charges:
            return []
        first: dict[str, int] = {}  # a charge twice in the call: the first one is inserted
        for index, item in enumerate(charges):
            first.setdefault(_stored_id(item), index)
        docs = [(i, _stored_charge_document(charges[i])) for i in first.values()]
        inserts = [
            asyncio.ensure_future(self._insert_charges(docs[start : start + CHARGE_INSERT_CHUNK]))
            for start in range(0, len(docs), CHARGE_INSERT_CHUNK)
        ]
        try:
            found = await asyncio.gather(*inserts)
        except BaseException:  # the first failure is raised as it is; the other inserts stop
            for insert in inserts:
                insert.cancel()
            raise
        duplicates = set(range(len(charges))) - set(first.values())
        duplicates.update(*found)
        stored_before = await self._stored([_stored_id(charges[i]) for i in sorted(duplicates)])
        result = []
        for index, item in enumerate(charges):
            if index not in duplicates:
                result.append(
                    StoredCharge(
                        charge_amounts(item.charge), item.invoice_id, item.position, new=True
                    )
                )
                continue
            found_doc = stored_before[_stored_id(item)]
            result.append(
                StoredCharge(
                    amounts_of_document(found_doc),
                    str(found_doc["invoice_id"]),
                    _position_of(found_doc),
                    new=False,
                )
            )
        return result

    async def _insert_charges(self, docs: list[tuple[int, Doc]]) -> set[int]:
        """Insert charge documents (each with its index in the batch); the indexes of those
        stored before (redelivered, or published twice: the point of the ``_id``)."""
        async with self._inserts:
            try:
                await self._charges.insert_many([doc for _, doc in docs], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                return {docs[int(e["index"])][0] for e in errors}
        return set()

    async def _stored(self, charge_ids: Sequence[str]) -> dict[str, Doc]:
        """The stored documents of charges a batch met again (redelivered after a crash, or
        published twice), each read by its ``_id``, ``STORED_LOOKUPS`` at a time. FerretDB
        pushes down no ``$in`` (on either backend): one query for them all would read the
        whole charges collection, ~60 s per redelivered batch at 200,000 stored charges (seen
        in the fault campaign), while an ``_id`` equality is answered from the primary key."""
        projection = {"invoice_id": 1, "stream_partition": 1, "stream_offset": 1, "period": 1,
                      "provider": 1, "service_name": 1, "currency": 1, "cost_currency": 1,
                      "cost_units": 1, "price_units": 1, "savings_removed_units": 1}  # fmt: skip
        found: dict[str, Doc] = {}

        async def look_up(charge_id: str) -> None:
            doc = await self._charges.find_one({"_id": charge_id}, projection)
            if doc is not None:
                found[str(doc["_id"])] = doc

        for start in range(0, len(charge_ids), STORED_LOOKUPS):
            chunk = charge_ids[start : start + STORED_LOOKUPS]
            await asyncio.gather(*(look_up(charge_id) for charge_id in chunk))
        return found

    async def customers_with_invoices(self, period: str) -> list[str]:
        """Customers that have an invoice (draft or not) for the period."""
        ids = await self._invoices.distinct("customer_id", {"period": period})
        return sorted(str(i) for i in ids)

    # --- finalization ---------------------------------------------------------------------

    async def invoice(self, invoice_id: str) -> Doc | None:
        """The stored invoice document (settlement fields included; a draft's lines so far)."""
        doc = await self._invoices.find_one({"_id": invoice_id})
        return None if doc is None else (await self.with_draft_lines([doc]))[0]

    async def claim_number(self, *, entity: str, year: int, invoice_id: str) -> int:
        """The invoice's sequence number in its entity's series for the year (gapless).

        Claims are found by ``_id`` (``<entity>:<year>:<seq>``): the next free number is the one
        after the last known, and the last is found by probing ids (a gapless series makes
        existence monotone), so a claim costs a few look-ups by ``_id`` however long the series.
        The unique index on ``invoice_id`` refuses a second claim for the same invoice (a retry
        after a crash); only then is the earlier claim searched by ``invoice_id``.
        """
        series = (entity, year)
        seq = self._last_seq.get(series)
        if seq is None:
            seq = await self._last_claimed(entity, year)
        seq += 1
        while True:
            try:
                await self._numbers.insert_one(
                    {
                        "_id": _claim_id(entity, year, seq),
                        "entity": entity,
                        "year": year,
                        "seq": seq,
                        "invoice_id": invoice_id,
                        "claimed_at": datetime.now(UTC),
                    }
                )
            except DuplicateKeyError:
                taken = await self._numbers.find_one({"_id": _claim_id(entity, year, seq)})
                if taken is None:  # not the number: the invoice has a claim already (a retry)
                    mine = await self._numbers.find_one({"invoice_id": invoice_id})
                    if mine is None:
                        raise
                    return int(mine["seq"])
                if taken["invoice_id"] == invoice_id:
                    return seq
                seq += 1  # another finalizer took it: the next one
                continue
            self._last_seq[series] = seq
            return seq

    async def _last_claimed(self, entity: str, year: int) -> int:
        """The last number claimed in a series (0 if none): exponential, then binary, probes."""

        async def exists(seq: int) -> bool:
            found = await self._numbers.find_one({"_id": _claim_id(entity, year, seq)}, {"_id": 1})
            return found is not None

        low, high = 0, 1
        while await exists(high):
            low, high = high, high * 2
        while high - low > 1:  # low exists (or is 0), high does not
            middle = (low + high) // 2
            if await exists(middle):
                low = middle
            else:
                high = middle
        return low

    async def record_negative_total(self, document: InvoiceDocument) -> None:
        """Record what a negative invoice owes the customer as customer credit, once (the
        credit of a finalized invoice is its ``overpaid``: settlement finds it recorded)."""
        # recorded once: a retry of this close finds it (and completes the customer's summary,
        # adapters/settlement_repo.py)
        entry_id = f"negative-total:{document.invoice_id}"
        units = to_units(-document.total, document.currency)
        with contextlib.suppress(DuplicateKeyError):
            await self._credits.insert_one(
                {
                    "_id": entry_id,
                    "customer_id": document.customer_id,
                    "invoice_id": document.invoice_id,
                    "invoice_number": document.number,
                    "currency": document.currency,
                    "amount_units": units,
                    "reason": f"credits exceed charges on invoice {document.number}",
                    "recorded_at": datetime.now(UTC),
                }
            )
        summary = {"id": entry_id, "currency": document.currency, "units": units}
        await self._credit_balances.update_one(
            {"_id": document.customer_id}, {"$addToSet": {"entries": summary}}, upsert=True
        )

    async def mark_published(self, invoice_id: str) -> None:
        """Remember that InvoiceFinalized was acknowledged by the broker."""
        await self._invoices.update_one(
            {"_id": invoice_id}, {"$set": {"published_at": datetime.now(UTC)}}
        )

    async def is_published(self, invoice_id: str) -> bool:
        """Whether InvoiceFinalized was acknowledged for the invoice."""
        doc = await self._invoices.find_one({"_id": invoice_id}, {"published_at": 1})
        return doc is not None and doc.get("published_at") is not None

    async def list_invoices(
        self, *, period: str | None = None, customer_id: str | None = None
    ) -> list[Doc]:
        """Invoices, newest period first, then by customer."""
        query: Doc = {}
        if period:
            query["period"] = period
        if customer_id:
            query["customer_id"] = customer_id
        cursor = self._invoices.find(query).sort([("period", -1), ("customer_id", 1)])
        return await self.with_draft_lines([doc async for doc in cursor])

    async def find_invoices(
        self,
        wanted: KeyFilter,
        matches: Callable[[Doc], bool] | None,
        *,
        offset: int,
        limit: int,
        with_document: bool = False,
    ) -> list[Doc]:
        """Invoices newest period first, then by customer and id (a stable order for paging),
        narrowed by ``wanted`` through the list's keys and, when given, by ``matches`` (what
        the keys cannot tell: status, exact total, adjustments); without their assembled
        document unless ``with_document``. Every invoice is read by ``_id``."""
        docs = await self._keys.page(
            wanted,
            matches,
            offset=offset,
            limit=limit,
            projection=None if with_document else {"document": 0},
        )
        return await self.with_draft_lines(docs)

    async def margin_sums(
        self, period: str, customer_id: str | None = None
    ) -> dict[tuple[Any, ...], dict[str, int]]:
        """Exact sums of cost, price and margin of the period's charges (usage period, late
        ones included) per customer, provider, service, invoice currency and cost currency."""
        match: Doc = {"period": period}
        if customer_id:
            match["customer_id"] = customer_id
        return await sum_by(
            self._charges,
            match,
            ["customer_id", "provider", "service_name", "currency", "cost_currency"],
            ["cost_units", "price_units", "margin_units"],
        )

    async def charges_of(self, invoice_id: str) -> AsyncIterator[ChargeLine]:
        """Every charge on an invoice (its own and late ones), in a stable order."""
        cursor = self._charges.find({"invoice_id": invoice_id}).sort(
            [("period", ASCENDING), ("provider", ASCENDING), ("service_name", ASCENDING),
             ("_id", ASCENDING)]
        )  # fmt: skip
        async for doc in cursor:
            yield charge_line_of(doc)

    # --- settlement of issued invoices ----------------------------------------------------

    async def _fresh(self, doc: Doc) -> Invoice:
        """The invoice of a stored document, after applying a settlement write stored for its
        next version but not applied (a writer crashed in between; see the module
        docstring)."""
        while True:
            invoice = invoice_of(doc)
            pending = await self._settlement_writes.find_one(
                {"_id": f"{invoice.invoice_id}@{invoice.version + 1}"}
            )
            if pending is None:
                self._loaded.pop(invoice.invoice_id, None)
                return invoice
            await self._write_row({**doc, **pending["fields"]}, invoice)
            await self._invoices.update_one(
                {"_id": invoice.invoice_id},
                {"$set": {**pending["fields"], "version": invoice.version + 1}},
            )
            found = await self._invoices.find_one({"_id": invoice.invoice_id})
            assert found is not None
            doc = found

    async def has_charge(self, charge_id: str) -> bool:
        """Whether a charge with that id is stored (one look-up by ``_id``)."""
        return await self._charges.find_one({"_id": charge_id}, {"_id": 1}) is not None

    async def _by_number(self, number: str, projection: Doc | None = None) -> Doc | None:
        """An invoice by its id, else by its number through the list's keys (``_id`` look-ups
        only)."""
        doc = await self._invoices.find_one({"_id": number}, projection)
        if doc is not None:
            return doc
        invoice_id = await self._keys.invoice_id_of(number)
        if invoice_id is None:
            return None
        return await self._invoices.find_one({"_id": invoice_id}, projection)

    async def document_by_number(self, number: str) -> Doc | None:
        """The stored invoice document by number or id, for reading only (queries)."""
        return await self._by_number(number)

    async def issued(self, number: str) -> Invoice | None:
        """An issued invoice by number or id, read fresh."""
        doc = await self._by_number(number, {"draft_lines": 0})
        if doc is None or doc.get("document") is None:
            return None
        return await self._fresh(doc)

    async def open_due_before(self, day: date) -> list[Invoice]:
        """Issued invoices that may still owe money, due before ``day``, by id (one scan, run
        once a day)."""
        cursor = self._invoices.find(
            {
                "status": {"$in": [s.value for s in OPEN_STATUSES]},
                "due_date": {"$lt": day.isoformat()},
            },
            {"draft_lines": 0},
        ).sort("_id", ASCENDING)
        return [await self._fresh(doc) async for doc in cursor]

    async def save_settlement(self, invoice: Invoice) -> None:
        """Store the settlement write for the next version (refused if another writer stored
        one: :class:`ConcurrentUpdateError`), then apply it by ``_id``."""
        fields = settlement_fields(invoice)
        version = invoice.version + 1
        self._loaded.pop(invoice.invoice_id, None)
        try:
            await self._settlement_writes.insert_one(
                {
                    "_id": f"{invoice.invoice_id}@{version}",
                    "invoice_id": invoice.invoice_id,
                    "fields": fields,
                }
            )
        except DuplicateKeyError:
            raise ConcurrentUpdateError(invoice.invoice_id) from None
        # the write is decided: its list row, then the invoice (a crash in between: _fresh)
        await self._write_row(invoice_fields(invoice) | fields, invoice)
        await self._invoices.update_one(
            {"_id": invoice.invoice_id}, {"$set": {**fields, "version": version}}
        )
        invoice.version = version
