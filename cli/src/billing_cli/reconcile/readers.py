"""Readers of what each service stored and published, one per source, for one period.

Each collection is read in one pass with only the fields compared (FerretDB over SQLite
answers no filter from an index, so a query per record would read the collection once per
record), and each topic once, from its beginning to its end as it is when reading starts, with
a raw consumer in no group (nothing is committed, no service's position moves).
Messages are decoded as JSON, not validated: a reader must see what was published, even what a
service would refuse.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_cli.reconcile.domain import (
    ZERO,
    Announcement,
    Bill,
    Charge,
    InvoiceFigures,
    LineKey,
    LineSums,
    StoredCharge,
    TaxFigures,
    Usage,
)
from billing_ingest.adapters.bill_registry import BILLS, LINES, LOADED, REJECTIONS, REVERSALS
from billing_ingest.adapters.submitted_events import SUBMITTED
from billing_ingest.service.load_bill import unpack_lines
from billing_invoicing.adapters.invoice_repo import CHARGES, INVOICES, MongoInvoiceRepository
from billing_rating.adapters.rated_store import CORRECTIONS, RECORDS
from billing_runtime.lag import UnknownTopicError, topic_partitions
from billing_schemas.money import from_fixed_units

Doc = dict[str, Any]


# --- Kafka --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the broker holds it."""

    location: str
    """``topic/partition/offset``."""
    value: bytes
    headers: dict[str, str]


async def read_topic(bootstrap_servers: str, topic: str) -> AsyncIterator[Message]:
    """Every message of ``topic`` from its beginning to its end as it is now (none if the topic
    does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="billing-reconcile")
    await admin.start()
    try:
        partitions = await topic_partitions(admin, [topic])
    except UnknownTopicError:
        return
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="billing-reconcile",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    where = f"{tp.topic}/{tp.partition}/{record.offset}"
                    yield Message(where, record.value or b"", headers)
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


def _data(value: bytes) -> Doc | None:
    """The ``data`` of an event's JSON (None if the bytes are no such JSON)."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    data = event.get("data") if isinstance(event, dict) else None
    return data if isinstance(data, dict) else None


def usage_of(data: Doc) -> Usage:
    """A usage record's compared fields, from its JSON."""
    return Usage(
        record_id=str(data["record_id"]),
        bill_id=data.get("bill_id"),
        provider=str(data["provider"]),
        billing_account_id=str(data["billing_account_id"]),
        sub_account_id=str(data["sub_account_id"]),
        currency=str(data["currency"]),
        billed_cost=Decimal(data["billed_cost"]),
        corrects_record_id=data.get("corrects_record_id"),
    )


def charge_of(data: Doc) -> Charge:
    """A rated charge's compared fields, from its JSON."""
    return Charge(
        charge_id=str(data["charge_id"]),
        record_id=str(data["record_id"]),
        customer_id=str(data["customer_id"]),
        provider=str(data["provider"]),
        service_name=str(data["service_name"]),
        cost=Decimal(data["cost"]),
        cost_currency=str(data["cost_currency"]),
        price=Decimal(data["price"]),
        currency=str(data["currency"]),
    )


def digest(value: bytes) -> str:
    """What identifies a message's bytes (a dead letter keeps them byte for byte)."""
    return hashlib.sha256(value).hexdigest()


Unreadable = dict[str, str]
"""Messages that are not what their topic carries: location -> digest of their bytes."""

_UNREADABLE = (KeyError, TypeError, ValueError, ArithmeticError)
"""What reading a malformed record or charge raises (``decimal.InvalidOperation`` included)."""


async def read_usage(
    bootstrap_servers: str, topic: str, period: str
) -> tuple[list[Usage], Unreadable]:
    """The period's usage records on the usage topic, every copy, in topic order; and the
    messages that are no usage record (whatever their period)."""
    out, unreadable = [], {}
    async for message in read_topic(bootstrap_servers, topic):
        data = _data(message.value)
        try:
            if data is None:
                raise ValueError
            if data.get("billing_period") == period:
                out.append(usage_of(data))
        except _UNREADABLE:
            unreadable[message.location] = digest(message.value)
    return out, unreadable


async def read_charges(
    bootstrap_servers: str, topic: str, period: str
) -> tuple[list[Charge], Unreadable]:
    """The period's rated charges on the charge topic (close markers are skipped); and the
    messages that are neither a charge nor a close marker."""
    out, unreadable = [], {}
    async for message in read_topic(bootstrap_servers, topic):
        data = _data(message.value)
        try:
            if data is None:
                raise ValueError
            if "charge_id" in data and data.get("billing_period") == period:
                out.append(charge_of(data))
            elif "charge_id" not in data and "customer_id" not in data:
                raise ValueError
        except _UNREADABLE:
            unreadable[message.location] = digest(message.value)
    return out, unreadable


@dataclass(frozen=True)
class DeadLetters:
    """A dead-letter topic: the error per dead record (or charge) id of the period, and per
    digest of every dead message's bytes."""

    by_id: dict[str, str]
    by_digest: dict[str, str]


async def read_dead_letters(
    bootstrap_servers: str, topic: str, period: str, id_field: str
) -> DeadLetters:
    """Id (``id_field`` of the dead message's data) -> error, for the period's dead letters;
    digest -> error, for all of them."""
    by_id: dict[str, str] = {}
    by_digest: dict[str, str] = {}
    async for message in read_topic(bootstrap_servers, topic):
        error = message.headers.get("x-error", "")
        by_digest[digest(message.value)] = error
        data = _data(message.value)
        if data is not None and data.get("billing_period") == period and id_field in data:
            by_id[str(data[id_field])] = error
    return DeadLetters(by_id, by_digest)


async def read_upstream_refusals(
    bootstrap_servers: str, topic: str, period: str
) -> list[tuple[str, str]]:
    """Upstream events of the period ingest refused: (``source:id``, verdict), from the
    rejected-usage topic (a bill's rejected rows are read from its registry instead). The
    period is the month of the event's usage start; an event whose start cannot be read is
    counted in every period."""
    out = []
    async for message in read_topic(bootstrap_servers, topic):
        data = _data(message.value)
        if data is None or data.get("bill_id") is not None:
            continue
        verdict = str(data.get("reason", "")).split(":", 1)[0]
        raw = data.get("raw") or {}
        try:
            event = orjson.loads(raw.get("event") or "")
            start = str(event["data"]["charge_period_start"])[:7]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            start = period
        if start == period:
            out.append((f"{raw.get('source')}:{event_id_of(raw)}", verdict))
    return out


def event_id_of(raw: Doc) -> str:
    """The id of a refused upstream event, as far as its text shows it."""
    try:
        return str(orjson.loads(raw.get("event") or "")["id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "?"


async def read_announced(bootstrap_servers: str, topic: str, period: str) -> list[Announcement]:
    """The period's invoices as the invoice-finalized topic announced them, every copy."""
    out = []
    async for message in read_topic(bootstrap_servers, topic):
        data = _data(message.value)
        if data is None or data.get("period") != period:
            continue
        try:
            out.append(
                Announcement(
                    invoice_id=str(data["invoice_id"]),
                    number=str(data["invoice_number"]),
                    subtotal=Decimal(data["subtotal"]),
                    tax=Decimal(data["tax"]),
                )
            )
        except _UNREADABLE:
            continue  # its consumer (notify) dead-letters it: not invoicing's to explain
    return out


# --- ingest -------------------------------------------------------------------------------


def _units(doc: Doc, name: str) -> dict[str, Decimal]:
    return {c: from_fixed_units(int(u)) for c, u in (doc.get(name) or {}).items()}


async def read_bills(db: AsyncDatabase[Doc], period: str) -> list[Bill]:
    """The loaded bills covering the period, with their kept lines and rejected rows."""
    projection = {"file_name": 1, "status": 1, "summary.billing_periods": 1, "rows_accepted": 1,
                  "rows_rejected": 1, "billed_cost_units": 1}  # fmt: skip
    bills = [
        doc
        async for doc in db[BILLS].find({"status": {"$in": LOADED}}, projection)
        if period in (doc.get("summary") or {}).get("billing_periods", [])
    ]
    ids = [str(doc["_id"]) for doc in bills]
    if not ids:
        return []
    lines: dict[str, dict[str, Usage]] = defaultdict(dict)
    kept_cost: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    kept_lines: dict[str, int] = defaultdict(int)
    async for doc in db[LINES].find({"bill_id": {"$in": ids}}, {"bill_id": 1, "payloads": 1}):
        bill_id = str(doc["bill_id"])
        for payload in unpack_lines(bytes(doc["payloads"])):
            data = _data(payload)
            if data is None:  # the bill's kept lines are its own JSON: counted as not kept
                continue
            usage = usage_of(data)
            kept_lines[bill_id] += 1
            kept_cost[bill_id][usage.currency] += usage.billed_cost
            if data.get("billing_period") == period:
                lines[bill_id][usage.record_id] = usage
    rejected: dict[str, list[tuple[int, str]]] = defaultdict(list)
    projection = {"bill_id": 1, "row": 1, "column": 1, "reason": 1}
    async for doc in db[REJECTIONS].find({"bill_id": {"$in": ids}}, projection):
        row = doc.get("row")
        column = f" ({doc['column']})" if doc.get("column") else ""
        text = f"row {'-' if row is None else row}{column}: {doc.get('reason', '')}"
        rejected[str(doc["bill_id"])].append((row or 0, text))
    return [
        Bill(
            bill_id=bill_id,
            file_name=str(doc.get("file_name", "")),
            status=str(doc["status"]),
            billed_cost=_units(doc, "billed_cost_units"),
            rows_accepted=int(doc.get("rows_accepted", 0)),
            rows_rejected=int(doc.get("rows_rejected", 0)),
            kept_cost=dict(kept_cost[bill_id]),
            kept_lines=kept_lines[bill_id],
            lines=lines[bill_id],
            rejected_rows=[text for _, text in sorted(rejected[bill_id])],
        )
        for doc in bills
        for bill_id in [str(doc["_id"])]
    ]


async def read_ids(db: AsyncDatabase[Doc], collection: str) -> frozenset[str]:
    """Every ``_id`` of a collection (ingest's reversals, accepted upstream events)."""
    return frozenset([str(doc["_id"]) async for doc in db[collection].find({}, {"_id": 1})])


async def read_restated(db: AsyncDatabase[Doc]) -> frozenset[str]:
    """Record ids a restatement reversed."""
    return await read_ids(db, REVERSALS)


async def read_upstream(db: AsyncDatabase[Doc]) -> frozenset[str]:
    """Record ids of accepted upstream usage events."""
    return await read_ids(db, SUBMITTED)


# --- rating -------------------------------------------------------------------------------


def _kept_lines(blob: bytes) -> Iterable[tuple[Decimal, str]]:
    """Price and record id of each record of a rating document (``price[\tsavings]\tJSON``)."""
    for line in zlib.decompress(blob).decode().split("\n"):
        parts = line.split("\t", 2)
        yield Decimal(parts[0]), str(orjson.loads(parts[-1])["record_id"])


async def read_rated(
    db: AsyncDatabase[Doc], period: str
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """What rating kept of the period: each record's price (its first copy) and each
    correction charge's price."""
    docs = [doc async for doc in db[RECORDS].find({"period": period}, {"at": 1, "records": 1})]
    prices: dict[str, Decimal] = {}
    for doc in sorted(docs, key=lambda d: int(d["at"])):
        for price, record_id in _kept_lines(bytes(doc["records"])):
            prices.setdefault(record_id, price)
    corrections = {
        str(doc["_id"]): Decimal(doc["price"])
        async for doc in db[CORRECTIONS].find({"period": period}, {"price": 1})
    }
    return prices, corrections


# --- invoicing ----------------------------------------------------------------------------


async def read_stored_charges(db: AsyncDatabase[Doc], period: str) -> list[StoredCharge]:
    """Invoicing's charges of the period, and the charges stored on the period's invoices."""
    projection = {"customer_id": 1, "invoice_id": 1, "period": 1, "provider": 1,
                  "service_name": 1, "cost_units": 1, "price_units": 1, "late": 1}  # fmt: skip
    suffix = f":{period}"
    return [
        StoredCharge(
            charge_id=str(doc["_id"]),
            customer_id=str(doc["customer_id"]),
            invoice_id=str(doc["invoice_id"]),
            period=str(doc["period"]),
            provider=str(doc["provider"]),
            service_name=str(doc["service_name"]),
            cost=from_fixed_units(int(doc["cost_units"])),
            price=from_fixed_units(int(doc["price_units"])),
            late=bool(doc.get("late")),
        )
        async for doc in db[CHARGES].find({}, projection)
        if doc.get("period") == period or str(doc.get("invoice_id", "")).endswith(suffix)
    ]


def _line_sums(lines: Iterable[Doc], period: str) -> dict[LineKey, LineSums]:
    out: dict[LineKey, LineSums] = {}
    for line in lines:
        key = (str(line.get("period") or period), str(line["provider"]), str(line["service_name"]))
        sums = LineSums(int(line["charge_count"]), Decimal(line["cost"]), Decimal(line["price"]))
        previous = out.get(key)
        out[key] = sums if previous is None else LineSums(
            previous.charges + sums.charges, previous.cost + sums.cost, previous.price + sums.price
        )  # fmt: skip
    return out


def _draft_line(doc: Doc) -> Doc:
    """A draft line with its amounts as decimal strings (older documents kept only nanos)."""
    out = dict(doc)
    for name in ("cost", "price"):
        if name not in out:
            out[name] = str(from_fixed_units(int(doc.get(f"{name}_units", 0))))
    return out


def invoice_figures(doc: Doc) -> InvoiceFigures:
    """An invoice document (a draft's lines filled in from its ledger) as compared."""
    period = str(doc["period"])
    document = doc.get("document")
    if document is None:  # a draft, or frozen and not yet finalized: its draft lines
        return InvoiceFigures(
            invoice_id=str(doc["_id"]),
            customer_id=str(doc["customer_id"]),
            period=period,
            status=str(doc["status"]),
            currency=doc.get("currency"),
            lines=_line_sums(map(_draft_line, doc.get("draft_lines") or []), period),
        )
    charged = [
        {"period": x.get("period"), "provider": x["provider"], "service_name": x["service_name"],
         "charge_count": x["charge_count"], "cost": x["cost"], "price": x["amount_exact"]}
        for x in document["lines"]
        if x.get("kind", "usage") in ("usage", "correction")
    ]  # fmt: skip
    return InvoiceFigures(
        invoice_id=str(doc["_id"]),
        customer_id=str(doc["customer_id"]),
        period=period,
        status=str(doc["status"]),
        currency=str(document["currency"]),
        lines=_line_sums(charged, period),
        rounded=[(Decimal(x["amount_exact"]), Decimal(x["amount"])) for x in document["lines"]],
        subtotal=Decimal(document["subtotal"]),
        taxes=[
            TaxFigures(
                label=str(t["label"]),
                percent=Decimal(t["percent"]),
                base_exact=Decimal(t["base_exact"]),
                tax_exact=Decimal(t["tax_exact"]),
                tax=Decimal(t["tax"]),
            )
            for t in document.get("taxes") or []
        ],
        tax=Decimal(document["tax"]),
    )


async def read_invoices(db: AsyncDatabase[Doc], period: str) -> list[InvoiceFigures]:
    """The period's invoices; a draft's lines as invoicing's readers get them (its ledger)."""
    projection = {"customer_id": 1, "period": 1, "status": 1, "currency": 1,
                  "draft_lines": 1, "document": 1}  # fmt: skip
    docs = [doc async for doc in db[INVOICES].find({"period": period}, projection)]
    docs = await MongoInvoiceRepository(db).with_draft_lines(docs)
    return [invoice_figures(doc) for doc in docs]
