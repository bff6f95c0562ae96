"""Exact sums on the real MongoDB-wire database, several accumulators per group."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime.mongo import sum_by

pytestmark = pytest.mark.integration


async def test_sum_by_gives_every_sum_and_the_count(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    big = 2**40  # int64 and int32 values mixed, as Python writes them
    await mongo_db.lines.insert_many(
        [
            {"c": "a", "s": "x", "cost": 5, "price": 7},
            {"c": "a", "s": "x", "cost": big, "price": 1},
            {"c": "a", "s": "y", "cost": -3, "price": 0},
            {"c": "b", "s": "x", "cost": 1, "price": 2},
        ]
    )
    sums = await sum_by(mongo_db.lines, {"c": "a"}, ["c", "s"], ["cost", "price"])
    assert sums == {
        ("a", "x"): {"count": 2, "cost": big + 5, "price": 8},
        ("a", "y"): {"count": 1, "cost": -3, "price": 0},
    }
