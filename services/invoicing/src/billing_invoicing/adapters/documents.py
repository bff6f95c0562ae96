"""Invoice PDFs by ``_id`` (collection :data:`billing_schemas.documents.INVOICE_PDF_FILES`).

One PDF per invoice, stored under an id derived from the invoice id (:func:`pdf_file_id`):
saving is one insert, and saving again (a redelivered marker, a retried finalization, two
savers racing) meets the duplicate key and returns the stored file; finding an invoice's PDF and
loading it are ``_id`` look-ups, the only filter FerretDB's SQLite backend answers without
reading every stored file (``billing_runtime.files``). PDFs stored in the GridFS bucket
:data:`~billing_schemas.documents.INVOICE_PDF_BUCKET` by earlier versions (ObjectId file ids)
are still loaded from there.

:class:`InMemoryInvoicePdfStore` is the fake with the same behaviour, for unit tests; both
satisfy the ``PdfStorage`` port of ``billing_invoicing.service.generate_invoices``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime.files import FileCollection, StoredFile, StoredFileCorruptError
from billing_schemas.documents import INVOICE_PDF_BUCKET, INVOICE_PDF_FILES


class InvoicePdfNotFoundError(LookupError):
    """No stored PDF has this file id."""


class InvoicePdfCorruptError(RuntimeError):
    """A stored PDF's bytes no longer match the checksum recorded when it was saved."""


@dataclass(frozen=True)
class StoredPdf:
    """A stored invoice PDF: its file id, checksum and size."""

    file_id: str
    sha256: str
    size: int


def pdf_file_id(invoice_id: str) -> str:
    """The id an invoice's PDF is stored under: one per invoice, known without a query."""
    return f"{invoice_id}.pdf"


def _pdf(stored: StoredFile) -> StoredPdf:
    return StoredPdf(stored.file_id, stored.sha256, stored.size)


def _not_found(file_id: str) -> InvoicePdfNotFoundError:
    return InvoicePdfNotFoundError(f"no invoice PDF with file id {file_id!r}")


class InvoicePdfStore:
    """Invoice PDFs in the pipeline's database."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._files = FileCollection(db[INVOICE_PDF_FILES])
        self._legacy = AsyncGridFSBucket(db, bucket_name=INVOICE_PDF_BUCKET)

    async def save(self, *, invoice_id: str, number: str, pdf: bytes) -> StoredPdf:
        """Store the invoice's PDF (named ``<number>.pdf``); if it is already stored, return
        that.

        The first stored PDF wins: an invoice document never changes once issued, so a second
        save with different bytes returns the original rather than replacing it.
        """
        metadata = {
            "invoice_id": invoice_id,
            "number": number,
            "filename": f"{number}.pdf",
            "content_type": "application/pdf",
        }
        return _pdf(await self._files.put(pdf_file_id(invoice_id), pdf, metadata))

    async def load(self, file_id: str) -> bytes:
        """The stored PDF's bytes, checked against the checksum recorded at save time.

        Raises :class:`InvoicePdfNotFoundError` for an unknown id and
        :class:`InvoicePdfCorruptError` if the bytes do not match.
        """
        try:
            data = await self._files.get(file_id)
        except StoredFileCorruptError as exc:
            raise InvoicePdfCorruptError(str(exc)) from None
        if data is not None:
            return data
        if not ObjectId.is_valid(file_id):
            raise _not_found(file_id)
        return await self._load_legacy(ObjectId(file_id))

    async def _load_legacy(self, file_id: ObjectId) -> bytes:
        """A PDF an earlier version stored in GridFS."""
        try:
            stream = await self._legacy.open_download_stream(file_id)
        except NoFile:
            raise _not_found(str(file_id)) from None
        data: bytes = await stream.read()
        expected = (stream.metadata or {}).get("sha256")
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            msg = f"invoice PDF {file_id} does not match its recorded sha256"
            raise InvoicePdfCorruptError(msg)
        return data

    async def find(self, invoice_id: str) -> StoredPdf | None:
        """The invoice's stored PDF, or None if none is stored."""
        stored = await self._files.info(pdf_file_id(invoice_id))
        return None if stored is None else _pdf(stored)
