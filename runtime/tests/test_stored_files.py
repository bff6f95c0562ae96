"""Files kept by ``_id`` (``billing_runtime.files``) on the real MongoDB-wire database: every
read is an ``_id`` look-up FerretDB answers itself, a file larger than a part is split and
joined back, the first stored file wins, and altered bytes are refused."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime import files
from billing_runtime.files import FileCollection, StoredFileCorruptError

pytestmark = pytest.mark.integration


async def test_a_file_larger_than_a_part_is_split_and_joined_back(
    mongo_db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "PART_BYTES", 1000)
    stored_files = FileCollection(mongo_db["files"])
    data = bytes(range(256)) * 10  # 2,560 bytes: three parts

    stored = await stored_files.put("f1", data, {"kind": "test"})

    assert (stored.size, stored.metadata) == (len(data), {"kind": "test"})
    assert await mongo_db["files"].count_documents({}) == 3
    assert await stored_files.get("f1") == data
    assert await stored_files.info("f1") == stored


async def test_the_first_file_stored_under_an_id_wins(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    stored_files = FileCollection(mongo_db["files"])

    first = await stored_files.put("f1", b"first", {})
    second = await stored_files.put("f1", b"second", {})

    assert second == first
    assert await stored_files.get("f1") == b"first"
    assert await stored_files.get("nothing") is None
    assert await stored_files.info("nothing") is None


async def test_a_missing_or_altered_part_is_refused(
    mongo_db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "PART_BYTES", 4)
    stored_files = FileCollection(mongo_db["files"])
    stored = await stored_files.put("f1", b"0123456789", {})
    [part] = await mongo_db["files"].find({"_id": {"$regex": "#2$"}}).to_list()

    await mongo_db["files"].update_one({"_id": part["_id"]}, {"$set": {"data": b"xy"}})
    with pytest.raises(StoredFileCorruptError, match="sha256"):
        await stored_files.get(stored.file_id)
    await mongo_db["files"].delete_one({"_id": part["_id"]})
    with pytest.raises(StoredFileCorruptError, match="lacks its part 2"):
        await stored_files.get(stored.file_id)
