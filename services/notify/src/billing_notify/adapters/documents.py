"""Reads invoice PDFs from GridFS (bucket :data:`billing_schemas.documents.INVOICE_PDF_BUCKET`).

Invoicing stores each finalized invoice's PDF before it publishes ``InvoiceFinalized``, so a
PDF that is not there is an error of the data, not a race: :class:`InvoicePdfMissingError`.
"""

from __future__ import annotations

from typing import Any, Protocol

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from billing_notify.domain.errors import InvoicePdfMissingError
from billing_schemas.documents import INVOICE_PDF_BUCKET


class InvoicePdfs(Protocol):
    """Port: the stored PDF of a finalized invoice."""

    async def load(self, file_id: str) -> bytes:
        """The PDF's bytes; :class:`InvoicePdfMissingError` if no file has this id."""
        ...


def _missing(file_id: str) -> InvoicePdfMissingError:
    return InvoicePdfMissingError(f"no invoice PDF is stored with file id {file_id!r}")


class GridFsInvoicePdfs:
    """Invoice PDFs in the pipeline database's GridFS bucket."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=INVOICE_PDF_BUCKET)

    async def load(self, file_id: str) -> bytes:
        """See :class:`InvoicePdfs`."""
        if not ObjectId.is_valid(file_id):
            raise _missing(file_id)
        try:
            stream = await self._bucket.open_download_stream(ObjectId(file_id))
        except NoFile:
            raise _missing(file_id) from None
        data: bytes = await stream.read()
        return data


class InMemoryInvoicePdfs:
    """Fake of the port for unit tests."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = dict(files or {})

    async def load(self, file_id: str) -> bytes:
        """See :class:`InvoicePdfs`."""
        try:
            return self.files[file_id]
        except KeyError:
            raise _missing(file_id) from None
