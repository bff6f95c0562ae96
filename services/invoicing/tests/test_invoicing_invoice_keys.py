"""The invoice list's keys on the real database: the close indexes the invoices it freezes
concurrently, so several writers create the same new key document at once (seen in the
fresh-clone CI run: DuplicateKeyError from the racing upserts of a period's ``total:`` and
``totals`` keys; and FerretDB loses one of two concurrent ``$addToSet``s on one document)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.invoice_keys import INVOICE_KEYS, InvoiceKeys
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
