"""Invoice PDFs in GridFS (bucket :data:`billing_schemas.documents.INVOICE_PDF_BUCKET`).

One PDF per invoice: the files collection carries a unique index on ``metadata.invoice_id``, so
saving again (a redelivered message, a retried finalization) returns the stored file instead of
writing a second one, even when two savers race. Only plain inserts, finds, deletes and one
index are used, which FerretDB (no transactions) supports.

:class:`InMemoryInvoicePdfStore` is the fake with the same behaviour, for unit tests; both
satisfy the ``PdfStorage`` port of ``billing_invoicing.service.generate_invoices``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import FileExists, NoFile
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from billing_schemas.documents import INVOICE_PDF_BUCKET

INVOICE_ID_INDEX = "invoice_id_unique"


class InvoicePdfNotFoundError(LookupError):
    """No stored PDF has this file id."""


class InvoicePdfCorruptError(RuntimeError):
    """A stored PDF's bytes no longer match the checksum recorded when it was saved."""


@dataclass(frozen=True)
class StoredPdf:
    """A stored invoice PDF: its GridFS file id (an ObjectId as a string), checksum and size."""

    file_id: str
    sha256: str
    size: int


def _stored(file_doc: dict[str, Any]) -> StoredPdf:
    return StoredPdf(
        file_id=str(file_doc["_id"]),
        sha256=str(file_doc["metadata"]["sha256"]),
        size=int(file_doc["length"]),
    )


def _object_id(file_id: str) -> ObjectId:
    if not ObjectId.is_valid(file_id):
        msg = f"no invoice PDF with file id {file_id!r}"
        raise InvoicePdfNotFoundError(msg)
    return ObjectId(file_id)


class InvoicePdfStore:
    """Invoice PDFs in a GridFS bucket of the pipeline's database."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=INVOICE_PDF_BUCKET)
        self._files = db[f"{INVOICE_PDF_BUCKET}.files"]
        self._chunks = db[f"{INVOICE_PDF_BUCKET}.chunks"]
        self._indexed = False

    async def ensure_indexes(self) -> None:
        """Create the unique index that makes :meth:`save` idempotent (safe to repeat)."""
        if not self._indexed:
            await self._files.create_index(
                [("metadata.invoice_id", ASCENDING)], unique=True, name=INVOICE_ID_INDEX
            )
            self._indexed = True

    async def save(self, *, invoice_id: str, number: str, pdf: bytes) -> StoredPdf:
        """Store the invoice's PDF as ``<number>.pdf``; if it is already stored, return that.

        The first stored PDF wins: an invoice document never changes once issued, so a second
        save with different bytes returns the original rather than replacing it.
        """
        await self.ensure_indexes()
        existing = await self.find(invoice_id)
        if existing is not None:
            return existing
        digest = hashlib.sha256(pdf).hexdigest()
        file_id = ObjectId()
        try:
            await self._bucket.upload_from_stream_with_id(
                file_id,
                f"{number}.pdf",
                pdf,
                metadata={
                    "invoice_id": invoice_id,
                    "number": number,
                    "sha256": digest,
                    "content_type": "application/pdf",
                },
            )
        except FileExists:
            # GridFS reports any duplicate key on the files collection as FileExists; here it
            # is the invoice_id index: a concurrent save won. Our chunks were written before
            # the files document was refused and belong to no file, so remove them.
            await self._chunks.delete_many({"files_id": file_id})
            winner = await self.find(invoice_id)
            if winner is None:
                raise
            return winner
        return StoredPdf(file_id=str(file_id), sha256=digest, size=len(pdf))

    async def load(self, file_id: str) -> bytes:
        """The stored PDF's bytes, checked against the checksum recorded at save time.

        Raises :class:`InvoicePdfNotFoundError` for an unknown id and
        :class:`InvoicePdfCorruptError` if the bytes do not match.
        """
        try:
            stream = await self._bucket.open_download_stream(_object_id(file_id))
        except NoFile:
            msg = f"no invoice PDF with file id {file_id!r}"
            raise InvoicePdfNotFoundError(msg) from None
        data: bytes = await stream.read()
        expected = (stream.metadata or {}).get("sha256")
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            msg = f"invoice PDF {file_id} does not match its recorded sha256"
            raise InvoicePdfCorruptError(msg)
        return data

    async def find(self, invoice_id: str) -> StoredPdf | None:
        """The invoice's stored PDF, or None if none is stored."""
        # The files collection is read directly: the document is all we need, no stream.
        file_doc = await self._files.find_one(
            {"metadata.invoice_id": invoice_id}, projection={"metadata": 1, "length": 1}
        )
        return None if file_doc is None else _stored(file_doc)


class InMemoryInvoicePdfStore:
    """The same behaviour as :class:`InvoicePdfStore`, in a dict, for unit tests."""

    def __init__(self) -> None:
        self._by_invoice: dict[str, StoredPdf] = {}
        self._data: dict[str, bytes] = {}

    async def save(self, *, invoice_id: str, number: str, pdf: bytes) -> StoredPdf:
        """Store the invoice's PDF; if it is already stored, return that (first one wins)."""
        del number  # only part of the stored file name in GridFS
        existing = self._by_invoice.get(invoice_id)
        if existing is not None:
            return existing
        stored = StoredPdf(
            file_id=str(ObjectId()), sha256=hashlib.sha256(pdf).hexdigest(), size=len(pdf)
        )
        self._by_invoice[invoice_id] = stored
        self._data[stored.file_id] = pdf
        return stored

    async def load(self, file_id: str) -> bytes:
        """The stored PDF's bytes; :class:`InvoicePdfNotFoundError` for an unknown id."""
        try:
            return self._data[file_id]
        except KeyError:
            msg = f"no invoice PDF with file id {file_id!r}"
            raise InvoicePdfNotFoundError(msg) from None

    async def find(self, invoice_id: str) -> StoredPdf | None:
        """The invoice's stored PDF, or None if none is stored."""
        return self._by_invoice.get(invoice_id)
