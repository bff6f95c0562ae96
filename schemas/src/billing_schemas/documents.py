"""Where invoice documents are stored: a collection of the pipeline's database.

Invoicing writes each finalized invoice's PDF once, under the file id ``<invoice id>.pdf``
(metadata ``invoice_id``, ``number``, ``filename``; the file's ``sha256`` and ``length``), in
:data:`INVOICE_PDF_FILES` as ``billing_runtime.files`` lays it out; only invoicing opens it:
notify gets the PDF by the id carried in ``InvoiceFinalized`` from invoicing's API
(``GET /v1/documents/{file_id}``). Versions before that stored PDFs in the GridFS bucket
:data:`INVOICE_PDF_BUCKET` (ObjectId file ids), still read from there.
"""

INVOICE_PDF_FILES = "invoice_pdf_files"
INVOICE_PDF_BUCKET = "invoice_pdfs"
