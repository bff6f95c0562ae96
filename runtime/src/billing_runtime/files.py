"""Files (invoice PDFs) kept by ``_id`` in one collection: a save is an insert, a load a look-up.

GridFS keeps a file's bytes in a chunks collection and reads them back by ``files_id``, a filter
FerretDB's SQLite backend answers by reading every chunk ever stored (docs/operations.md, "The
database backend"); finding a file by a metadata field is the same scan. Here a file's first
document has the file's own id as ``_id`` and carries its bytes (``data``), its length, SHA-256
and metadata; a file larger than :data:`PART_BYTES` continues in further documents whose ids
derive from the file id and its checksum (``<id>#<sha256 prefix>#<n>``). Saving writes the
further parts first and the first document last, so a file is visible only once complete; a
second save of the same id finds the first document there (duplicate key) and returns what is
stored: the first stored file wins. Every read is an ``_id`` equality, the one filter FerretDB
answers itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from bson import Binary
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

Doc = dict[str, Any]

PART_BYTES = 4 * 1024 * 1024
"""Bytes per document: well under the 16 MiB document limit of MongoDB and FerretDB."""


class StoredFileCorruptError(RuntimeError):
    """A stored file's bytes no longer match the checksum recorded when it was saved."""


@dataclass(frozen=True)
class StoredFile:
    """What is known of a stored file without reading its bytes."""

    file_id: str
    sha256: str
    size: int
    metadata: Doc = field(default_factory=dict)


def _part_id(file_id: str, sha256: str, n: int) -> str:
    return f"{file_id}#{sha256[:16]}#{n}"


def _stored(doc: Doc) -> StoredFile:
    return StoredFile(
        file_id=str(doc["_id"]),
        sha256=str(doc["sha256"]),
        size=int(doc["length"]),
        metadata=dict(doc.get("metadata") or {}),
    )


class FileCollection:
    """Files by id in one collection (see the module docstring)."""

    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._files = collection

    async def put(self, file_id: str, data: bytes, metadata: Doc) -> StoredFile:
        """Store ``data`` under ``file_id``; if a file is stored there already, return it (the
        first one wins, whatever its bytes)."""
        digest = hashlib.sha256(data).hexdigest()
        parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
        if len(parts) > 1:
            rest = [
                {"_id": _part_id(file_id, digest, n), "data": Binary(part)}
                for n, part in enumerate(parts[1:], start=1)
            ]
            try:
                await self._files.insert_many(rest, ordered=False)
            except BulkWriteError as exc:  # the same parts from an earlier or concurrent save
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
        first = {
            "_id": file_id,
            "length": len(data),
            "sha256": digest,
            "parts": len(parts),
            "metadata": metadata,
            "data": Binary(parts[0]),
        }
        try:
            await self._files.insert_one(first)
        except DuplicateKeyError:
            stored = await self.info(file_id)
            if stored is None:
                raise
            return stored
        return StoredFile(file_id, digest, len(data), metadata)

    async def info(self, file_id: str) -> StoredFile | None:
        """The stored file's id, checksum, size and metadata (not its bytes), or None."""
        doc = await self._files.find_one({"_id": file_id}, {"data": 0})
        return None if doc is None else _stored(doc)

    async def get(self, file_id: str) -> bytes | None:
        """The stored file's bytes, or None if there is no file with this id; raises
        :class:`StoredFileCorruptError` if they do not match the recorded checksum."""
        doc = await self._files.find_one({"_id": file_id})
        if doc is None:
            return None
        digest = str(doc["sha256"])
        chunks = [bytes(doc["data"])]
        for n in range(1, int(doc.get("parts", 1))):
            part = await self._files.find_one({"_id": _part_id(file_id, digest, n)})
            if part is None:
                msg = f"stored file {file_id!r} lacks its part {n}"
                raise StoredFileCorruptError(msg)
            chunks.append(bytes(part["data"]))
        data = b"".join(chunks)
        if hashlib.sha256(data).hexdigest() != digest:
            msg = f"stored file {file_id!r} does not match its recorded sha256"
            raise StoredFileCorruptError(msg)
        return data
