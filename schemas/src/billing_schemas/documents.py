"""Where invoice documents are stored: a GridFS bucket in the pipeline's database.

Invoicing writes each finalized invoice's PDF once (file name ``<invoice number>.pdf``, metadata
``invoice_id`` and ``sha256``); notify reads it back by the id carried in ``InvoiceFinalized``.
"""

INVOICE_PDF_BUCKET = "invoice_pdfs"
