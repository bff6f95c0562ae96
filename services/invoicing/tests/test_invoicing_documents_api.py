"""``GET /v1/documents/{file_id}``: the issued documents by the file id their events carry, for
notify (a document-reader token, which no other route accepts) and operators, served by the
invoicing app as deployed (``create_app``: settings, bootstrap, the PDF store on FerretDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.app import create_app
from billing_invoicing.domain.access import TokenConfigError
from billing_invoicing.settings import InvoicingSettings
from billing_schemas.documents import INVOICE_PDF_BUCKET, INVOICE_PDF_FILES

if TYPE_CHECKING:
    from conftest import Infra

pytestmark = pytest.mark.integration

READER = "notify-reader-token-0123456789"
OPERATOR = "operator-token-0123456789"
ALPHA = "alpha-token-0123456789ab"
INVOICE_PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
NOTE_PDF = b"%PDF-1.7 credit note\n%%EOF\n"


def settings(infra: Infra, namespace: str, **extra: Any) -> InvoicingSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": namespace,
        "topic_namespace": f"{namespace}.",
        "pdf_workers": 1,
        "api_tokens": {OPERATOR: "operator", ALPHA: "customer:alpha"},
        "document_reader_tokens": f"{READER}, another-reader-token-0123",
    }
    return InvoicingSettings.model_validate(values | extra)


@pytest.fixture
async def client(infra: Infra, namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings(infra, namespace)))
    async with httpx.AsyncClient(transport=transport, base_url="http://invoicing") as client:
        yield client


async def get(client: httpx.AsyncClient, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.get(path, headers=headers)


async def test_a_reader_gets_invoice_credit_note_and_legacy_pdfs_byte_for_byte(
    client: httpx.AsyncClient, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    store = InvoicePdfStore(mongo_db)
    invoice = await store.save(invoice_id="alpha:2024-09", number="C-2024-000001", pdf=INVOICE_PDF)
    note = await store.save(invoice_id="cn-alpha-1", number="C-CN-2024-000001", pdf=NOTE_PDF)
    bucket = AsyncGridFSBucket(mongo_db, bucket_name=INVOICE_PDF_BUCKET)
    legacy = str(await bucket.upload_from_stream("OLD-1.pdf", INVOICE_PDF))

    for file_id, pdf in [(invoice.file_id, INVOICE_PDF), (note.file_id, NOTE_PDF)]:
        for token in (READER, "another-reader-token-0123", OPERATOR):
            answer = await get(client, f"/v1/documents/{file_id}", token)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/pdf"
            assert answer.content == pdf
    answer = await get(client, f"/v1/documents/{legacy}", READER)
    assert (answer.status_code, answer.content) == (200, INVOICE_PDF)
    quoted = await get(client, "/v1/documents/alpha%3A2024-09.pdf", READER)  # as notify asks
    assert quoted.content == INVOICE_PDF


async def test_a_file_id_never_stored_is_404(client: httpx.AsyncClient) -> None:
    answer = await get(client, "/v1/documents/nobody:2024-09.pdf", READER)
    assert answer.status_code == 404
    assert "nobody:2024-09.pdf" in answer.json()["detail"]


async def test_altered_stored_bytes_are_409_not_served(
    client: httpx.AsyncClient, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    stored = await InvoicePdfStore(mongo_db).save(
        invoice_id="alpha:2024-10", number="C-2024-000002", pdf=INVOICE_PDF
    )
    await mongo_db[INVOICE_PDF_FILES].update_one(
        {"_id": stored.file_id}, {"$set": {"data": b"%PDF-forged"}}
    )
    answer = await get(client, f"/v1/documents/{stored.file_id}", READER)
    assert answer.status_code == 409
    assert b"forged" not in answer.content


async def test_only_readers_and_operators_read_documents(
    client: httpx.AsyncClient, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    stored = await InvoicePdfStore(mongo_db).save(
        invoice_id="alpha:2024-09", number="C-2024-000001", pdf=INVOICE_PDF
    )
    path = f"/v1/documents/{stored.file_id}"
    assert (await get(client, path, ALPHA)).status_code == 403  # even its own customer's
    for token in (None, "not-a-token-0123456789", READER + "x"):
        answer = await get(client, path, token)
        assert answer.status_code == 401, token
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/invoices"),
        ("GET", "/v1/invoices/C-2024-000001"),
        ("GET", "/v1/invoices/C-2024-000001/pdf"),
        ("GET", "/v1/customers/alpha/contacts"),
        ("GET", "/v1/reports/margin?period=2024-09"),
        ("POST", "/v1/periods/2024-10/close"),
        ("PUT", "/v1/catalog"),
    ],
)
async def test_a_reader_token_opens_no_other_route(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    answer = await client.request(
        method, path, headers={"Authorization": f"Bearer {READER}"}, json={}
    )
    assert answer.status_code == 401, answer.text


def test_a_short_reader_token_is_refused_without_showing_it(infra: Infra, namespace: str) -> None:
    configured = settings(infra, namespace, document_reader_tokens=f"{READER},short-token")
    with pytest.raises(TokenConfigError, match=r"#2 \(shor\.\.\.\)") as caught:
        configured.document_readers()
    assert "short-token" not in str(caught.value)
    assert settings(infra, namespace, document_reader_tokens="").document_readers() == ()
