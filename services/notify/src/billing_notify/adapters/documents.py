"""Reads invoice PDFs by file id (collection :data:`billing_schemas.documents.INVOICE_PDF_FILES`,
laid out by ``billing_runtime.files``: one ``_id`` look-up per PDF).

Invoicing stores each finalized invoice's PDF before it publishes ``InvoiceFinalized``, so a
PDF that is not there is an error of the data, not a race: :class:`InvoicePdfMissingError`.
PDFs stored by earlier versions in the GridFS bucket
:data:`~billing_schemas.documents.INVOICE_PDF_BUCKET` (ObjectId file ids) are read from there.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from billing_notify.domain.errors import InvoicePdfMismatchError, InvoicePdfMissingError
from billing_runtime.files import FileCollection, StoredFileCorruptError
from billing_schemas.documents import INVOICE_PDF_BUCKET, INVOICE_PDF_FILES


def _missing(file_id: str) -> InvoicePdfMissingError:
    return InvoicePdfMissingError(f"no invoice PDF is stored with file id {file_id!r}")


class MongoInvoicePdfs:
    """Invoice PDFs in the pipeline database (the checksum is checked by the use case, against
    the one the event carries)."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._files = FileCollection(db[INVOICE_PDF_FILES])
        self._legacy = AsyncGridFSBucket(db, bucket_name=INVOICE_PDF_BUCKET)

    async def load(self, file_id: str) -> bytes:
        """See :class:`InvoicePdfs`."""
        try:
            data = await self._files.get(file_id)
        except StoredFileCorruptError as exc:  # permanent: the event is dead-lettered
            raise InvoicePdfMismatchError(str(exc)) from None
        if data is not None:
            return data
        if not ObjectId.is_valid(file_id):
            raise _missing(file_id)
        try:
            stream = await self._legacy.open_download_stream(ObjectId(file_id))
        except NoFile:
            raise _missing(file_id) from None
        legacy: bytes = await stream.read()
        return legacy
