"""The invoice list's keys on the real database: the close indexes the invoices it freezes
concurrently, so several writers create the same new key document at once (seen in the
fresh-clone CI run: DuplicateKeyError from the racing upserts of a period's ``total:`` and
``totals`` keys; and FerretDB loses one of two concurrent ``$addToSet``s on one document)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters import invoice_keys
from billing_invoicing.adapters.invoice_keys import (
    INVOICE_KEYS,
    MERGE_AT,
    PACK_AT,
    InvoiceKeys,
    KeyFilter,
    unpacked,
)
from billing_invoicing.adapters.invoice_repo import INVOICES


async def test_invoices_indexed_at_once_all_get_their_keys(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    ids = [f"c{n:03}:2024-09" for n in range(40)]
    # the repository's one InvoiceKeys, written to by concurrent finalizations
    index = InvoiceKeys(mongo_db, INVOICES)

    await asyncio.gather(*(index.add_invoices([i]) for i in ids))
    await asyncio.gather(
        *(index.add_issued(i, f"INV-{n:04}", Decimal("123.45")) for n, i in enumerate(ids))
    )

    keys = mongo_db[INVOICE_KEYS]
    period = await keys.find_one({"_id": "period:2024-09"})
    assert period is not None
    assert sorted(period["keys"]) == ids
    totals = await keys.find_one({"_id": "totals"})
    assert totals is not None
    assert totals["keys"]
    for bucket in totals["keys"]:
        held = await keys.find_one({"_id": f"total:{bucket}"})
        assert held is not None
        assert sorted(held["keys"]) == ids
    for n, invoice_id in enumerate(ids):
        assert await keys.find_one({"_id": f"number:INV-{n:04}"}) == {
            "_id": f"number:INV-{n:04}",
            "invoice_id": invoice_id,
        }


def invoice(invoice_id: str) -> dict[str, Any]:
    customer, period = invoice_id.rsplit(":", 1)
    return {"_id": invoice_id, "customer_id": customer, "period": period, "status": "draft"}


def months(count: int) -> list[str]:
    return [f"{2000 + n // 12:04d}-{n % 12 + 1:02d}" for n in range(count)]


async def test_packed_ids_keep_the_list_order_across_segments_and_rewrites(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    periods = months(3 * PACK_AT + 5)  # three packed segments and an array of five
    ids = [f"big:{p}" for p in periods]
    shuffled = ids[1::2] + ids[::2]  # written out of list order
    await mongo_db[INVOICES].insert_many([invoice(i) for i in ids])
    index = InvoiceKeys(mongo_db, INVOICES)
    for start in range(0, len(shuffled), 16):
        await index.add_invoices(shuffled[start : start + 16])
    await index.add_invoices(ids[:40])  # re-written: some packed already, some not

    stored = await mongo_db[INVOICE_KEYS].find_one({"_id": "customer:big"})
    assert stored is not None
    assert len(stored["packed"]) >= 3
    assert len(stored["keys"]) < PACK_AT
    newest_first = ids[::-1]
    everything = await index.page(KeyFilter("big"), None, offset=0, limit=10_000, projection=None)
    assert [d["_id"] for d in everything] == newest_first
    for offset in (0, PACK_AT - 3, 2 * PACK_AT + 1, len(ids) - 4):
        page = await index.page(KeyFilter("big"), None, offset=offset, limit=7, projection=None)
        assert [d["_id"] for d in page] == newest_first[offset : offset + 7], offset
    # the period list passes each period once, though its period was written twice
    every = await index.page(KeyFilter(), None, offset=0, limit=10_000, projection=None)
    assert [d["_id"] for d in every] == newest_first


async def test_many_segments_are_merged_into_one(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    ids = [f"c{n:04}:2024-09" for n in range(MERGE_AT * PACK_AT + 3)]
    index = InvoiceKeys(mongo_db, INVOICES)
    for start in range(0, len(ids), PACK_AT):
        await index.add_invoices(ids[start : start + PACK_AT])

    stored = await mongo_db[INVOICE_KEYS].find_one({"_id": "period:2024-09"})
    assert stored is not None
    assert len(stored["packed"]) < MERGE_AT
    assert sorted(unpacked(stored["packed"]) + stored["keys"]) == ids


async def test_a_key_written_before_its_invoice_is_skipped_until_the_invoice_is_stored(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    ids = [f"big:{p}" for p in months(PACK_AT + 2)]
    index = InvoiceKeys(mongo_db, INVOICES)
    await index.add_invoices(ids)  # then the writer crashed: no invoice stored yet
    await mongo_db[INVOICES].insert_many([invoice(i) for i in ids[:-1]])

    found = await index.page(KeyFilter("big"), None, offset=0, limit=3, projection=None)
    assert [d["_id"] for d in found] == ids[-2:-5:-1]  # the newest has no invoice: skipped

    await index.add_invoices([ids[-1]])  # the retry writes its key again, then its invoice
    await mongo_db[INVOICES].insert_one(invoice(ids[-1]))
    found = await index.page(KeyFilter("big"), None, offset=0, limit=3, projection=None)
    assert [d["_id"] for d in found] == ids[-1:-4:-1]
    everything = await index.page(KeyFilter("big"), None, offset=0, limit=1000, projection=None)
    assert len(everything) == len(ids)


async def test_rebuild_packs_what_was_stored_before_the_keys_once(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    before = [f"big:{p}" for p in months(150)] + [f"c01:{p}" for p in months(3)]
    await mongo_db[INVOICES].insert_many([invoice(i) for i in before])
    await mongo_db[INVOICES].update_one(
        {"_id": "big:2000-01"}, {"$set": {"number": "N-1", "total_units": 105 * 10**9}}
    )
    index = InvoiceKeys(mongo_db, INVOICES)
    assert await index.rebuild() == len(before)
    assert await index.rebuild() == 0  # once

    stored = await mongo_db[INVOICE_KEYS].find_one({"_id": "customer:big"})
    assert stored is not None
    assert stored["keys"] == []
    assert len(stored["packed"]) == 1
    later = "big:2099-01"
    await index.add_invoices([later])  # added after the rebuild: beside the packed ids
    await mongo_db[INVOICES].insert_one(invoice(later))
    big = sorted(i for i in before if i.startswith("big:"))
    found = await index.page(KeyFilter("big"), None, offset=0, limit=1000, projection=None)
    assert [d["_id"] for d in found] == [later, *big[::-1]]
    ranged = KeyFilter(min_total=Decimal(100), max_total=Decimal(110))
    found = await index.page(ranged, None, offset=0, limit=5, projection=None)
    assert [d["_id"] for d in found] == ["big:2000-01"]
    assert await index.invoice_id_of("N-1") == "big:2000-01"


async def test_a_kept_customer_order_is_read_again_once_another_process_adds_to_it(
    mongo_db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invoice_keys, "KEEP_FROM", 1)
    ids = [f"big:{p}" for p in months(30)]
    await mongo_db[INVOICES].insert_many([invoice(i) for i in ids])
    reader, writer = InvoiceKeys(mongo_db, INVOICES), InvoiceKeys(mongo_db, INVOICES)
    await writer.add_invoices(ids)

    async def first_three() -> list[str]:
        found = await reader.page(KeyFilter("big"), None, offset=0, limit=3, projection=None)
        return [d["_id"] for d in found]

    assert await first_three() == ids[-1:-4:-1]
    # kept: the next page reads the stamp, not the key document
    await mongo_db[INVOICE_KEYS].update_one(
        {"_id": "customer:big"}, {"$set": {"packed": [], "keys": []}}
    )
    assert await first_three() == ids[-1:-4:-1]
    await mongo_db[INVOICE_KEYS].delete_one({"_id": "customer:big"})
    later = [f"big:{p}" for p in ("2099-01", "2099-02")]
    await mongo_db[INVOICES].insert_many([invoice(i) for i in later])
    await writer.add_invoices(later)  # another process: a new stamp
    assert await first_three() == [later[1], later[0]]
