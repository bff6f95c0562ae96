"""Issue 17's acceptance for the e2e tests (``tests/e2e`` import this): every invoice and credit
note the real pipeline issued in a test is generated in the three e-invoice formats and passes
the Mustang validator.

:func:`validate_issued` reads what the test's database holds (every numbered invoice, every
credit note), asks the real use case for each format (``service/einvoices.py``, the PDF pool for
Factur-X), adds the PDF stored for each customer who receives Factur-X (the one emailed), and
runs ``scripts/einvoice-validator.sh`` on all of them in one JVM. The validator's reports of
failed documents are kept under ``var/einvoice-reports/<test>/``.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import EInvoiceFormat
from billing_invoicing.adapters.catalog_repo import MongoCatalogRepository
from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.adapters.einvoice_documents import MongoIssuedDocuments
from billing_invoicing.adapters.pdf import PdfRenderer
from billing_invoicing.adapters.settlement_repo import CREDIT_NOTES
from billing_invoicing.domain.access import Scope
from billing_invoicing.service.einvoices import EInvoicePorts, einvoice_file

ROOT = Path(__file__).resolve().parents[3]
VALIDATOR = ROOT / "scripts" / "einvoice-validator.sh"
REPORTS = ROOT / "var" / "einvoice-reports"
OPERATOR = Scope(customer_id=None)

Doc = dict[str, Any]


async def issued_numbers(db: AsyncDatabase[Doc]) -> tuple[list[str], list[str]]:
    """The numbers of the finalized invoices and of the credit notes in ``db``."""
    invoices = [
        str(doc["number"])
        async for doc in db["invoicing_invoices"].find({}, {"number": 1, "document": 1})
        if doc.get("number") and doc.get("document")
    ]
    notes = [str(doc["number"]) async for doc in db[CREDIT_NOTES].find({}, {"number": 1})]
    return sorted(invoices), sorted(notes)


async def issued_einvoices(db: AsyncDatabase[Doc]) -> dict[str, bytes]:
    """Every issued document of ``db`` in every format, and the stored Factur-X PDFs, by file
    name."""
    catalog = MongoCatalogRepository(db)
    invoices, notes = await issued_numbers(db)
    files: dict[str, bytes] = {}
    async with PdfRenderer(max_workers=1) as renderer:
        ports = EInvoicePorts(catalog, MongoIssuedDocuments(db), renderer)
        for number in invoices + notes:
            for fmt in EInvoiceFormat:
                made = await einvoice_file(ports, OPERATOR, number, fmt)
                files[made.name] = made.content
    # what was sent: the PDF stored for each customer who receives Factur-X
    pdfs = InvoicePdfStore(db)
    projection = {"number": 1, "customer_id": 1, "pdf_file_id": 1}
    async for doc in db["invoicing_invoices"].find({}, projection):
        customer = await catalog.customer(str(doc.get("customer_id")))
        if customer and EInvoiceFormat.FACTURX in customer.einvoice and doc.get("pdf_file_id"):
            files[f"{doc['number']}-stored.pdf"] = await pdfs.load(str(doc["pdf_file_id"]))
    return files


def validate(files: dict[str, bytes], directory: Path, reports: Path) -> dict[str, bool]:
    """Write the files into ``directory`` and return Mustang's verdict on each (one JVM); the
    reports of valid files are deleted, those of invalid ones kept in ``reports``."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    paths = []
    for name, content in files.items():
        path = directory / name
        path.write_bytes(content)
        paths.append(path)
    completed = subprocess.run(
        [str(VALIDATOR), "validate", str(reports), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    verdicts: dict[str, bool] = {}
    for line in completed.stdout.splitlines():
        found = re.fullmatch(r"(valid|invalid) (.+)", line.strip())
        if found:
            verdicts[Path(found.group(2)).name] = found.group(1) == "valid"
    missing = sorted(set(files) - set(verdicts))
    assert not missing, (
        f"the validator gave no verdict on {missing} (exit {completed.returncode}):\n"
        f"{completed.stdout}\n{completed.stderr}"
    )
    for name, valid in verdicts.items():
        if valid:
            (reports / f"{name}.report.xml").unlink(missing_ok=True)
    return verdicts


async def validate_issued(
    db: AsyncDatabase[Doc], work: Path, test_name: str, *, expect: int
) -> list[str]:
    """Generate and validate everything ``db`` issued (at least ``expect`` invoices and credit
    notes); fail naming each invalid file and its kept report. Returns the files' names."""
    invoices, notes = await issued_numbers(db)
    assert len(invoices) + len(notes) >= expect, (invoices, notes)
    files = await issued_einvoices(db)
    reports = REPORTS / re.sub(r"[^\w.-]", "_", test_name)
    verdicts = await asyncio.to_thread(validate, files, work / "einvoices", reports)
    invalid = [
        f"{name} (report: {reports}/{name}.report.xml)" for name, ok in verdicts.items() if not ok
    ]
    assert invalid == [], f"invalid e-invoices: {invalid}"
    return sorted(files)
