"""Notify's ``InvoicePdfs`` port, one contract run against its in-memory fake and against its
HTTP adapter talking to invoicing's real app (``create_app``: settings, the documents route,
the PDF store on FerretDB; the PDFs stored by invoicing's own adapter): a stored document comes
back byte for byte, a missing one is the permanent ``InvoicePdfMissingError``, invoicing failing
is the transient ``DocumentsUnavailableError`` (notify retries the event, never dead-letters it).

It sits here, beside the other cross-service contracts, because it holds two services to one
agreement: notify's tests import no invoicing code, invoicing's route has its own tests.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.documents import InvoicePdfStore
from billing_invoicing.app import create_app
from billing_invoicing.settings import InvoicingSettings
from billing_notify.adapters.documents import HttpInvoicePdfs
from billing_notify.adapters.memory import InMemoryInvoicePdfs
from billing_notify.domain.errors import InvoicePdfMismatchError, InvoicePdfMissingError
from billing_notify.ports import DocumentsUnavailableError, InvoicePdfs
from billing_notify.service.failures import own_failure
from billing_schemas.documents import INVOICE_PDF_FILES

if TYPE_CHECKING:
    from faststream.asgi import AsgiFastStream

    from conftest import Infra

READER = "notify-reader-token-0123456789"
INVOICE_PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"
NOTE_PDF = b"%PDF-1.7 credit note\n" + bytes(range(256)) + b"\n%%EOF\n"
BACKENDS = ["memory", pytest.param("http", marks=pytest.mark.integration)]

Asgi = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


@dataclass
class Sleeps:
    """The adapter's waits between attempts, recorded instead of slept."""

    seconds: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


class Failing:
    """Invoicing's app behind something that answers ``status`` to the first ``times``
    requests (a proxy or an overloaded invoicing): a server error, as notify meets one."""

    def __init__(self, app: Asgi, status: int, times: int) -> None:
        self.app = app
        self.status = status
        self.times = times

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.times > 0:
            self.times -= 1
            body = b'{"detail": "unavailable"}'
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": self.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


@dataclass
class Documents:
    """A port holding an invoice's and a credit note's PDF; the same port while its source
    fails (``failing``, ``times`` requests: None for every one); the ids the events carry."""

    invoice_id: str
    note_id: str
    failing: Callable[[int | None], InvoicePdfs]
    pdfs: InvoicePdfs
    sleeps: Sleeps


def _invoicing(infra: Infra, namespace: str) -> AsgiFastStream:
    settings = InvoicingSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        mongodb_database=namespace,
        topic_namespace=f"{namespace}.",
        pdf_workers=1,
        document_reader_tokens=[READER],
    )
    return create_app(settings)


@pytest.fixture(params=BACKENDS)
async def documents(request: pytest.FixtureRequest) -> AsyncIterator[Documents]:
    sleeps = Sleeps()
    if request.param == "memory":
        files = {"inv.pdf": INVOICE_PDF, "note.pdf": NOTE_PDF}

        def fake(times: int | None) -> InvoicePdfs:
            del times  # the fake is down or up, not down for a while
            return InMemoryInvoicePdfs(files, unavailable=True)

        yield Documents("inv.pdf", "note.pdf", fake, InMemoryInvoicePdfs(files), sleeps)
        return
    # the synchronous fixtures only: pytest-asyncio cannot hand an async one to getfixturevalue
    infra: Infra = request.getfixturevalue("infra")
    namespace: str = request.getfixturevalue("namespace")
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    store = InvoicePdfStore(
        mongo[namespace]
    )  # invoicing stores them, as its close and credit notes do
    invoice = await store.save(invoice_id="acme:2024-09", number="CUM-2024-000001", pdf=INVOICE_PDF)
    note = await store.save(invoice_id="cn-acme-1", number="CUM-CN-2024-000001", pdf=NOTE_PDF)
    app: Any = _invoicing(infra, namespace)
    clients: list[httpx.AsyncClient] = []

    def adapter(asgi: Asgi) -> HttpInvoicePdfs:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi))
        clients.append(client)
        return HttpInvoicePdfs("http://invoicing:8103/", READER, client=client, sleep=sleeps)

    def failing(times: int | None) -> InvoicePdfs:
        return adapter(Failing(app, 503, 1_000_000 if times is None else times))

    try:
        yield Documents(invoice.file_id, note.file_id, failing, adapter(app), sleeps)
    finally:
        for client in clients:
            await client.aclose()
        await mongo.drop_database(namespace)
        await mongo.close()


async def test_a_stored_document_comes_back_byte_for_byte(documents: Documents) -> None:
    assert await documents.pdfs.load(documents.invoice_id) == INVOICE_PDF
    assert await documents.pdfs.load(documents.note_id) == NOTE_PDF
    assert documents.sleeps.seconds == []  # asked once each


async def test_a_document_never_stored_is_missing_for_good(documents: Documents) -> None:
    with pytest.raises(InvoicePdfMissingError, match=r"acme:2024-08\.pdf") as caught:
        await documents.pdfs.load("acme:2024-08.pdf")
    assert own_failure(caught.value) is not None  # dead-lettered with its reason


async def test_a_source_that_fails_is_transient_not_the_events_fault(
    documents: Documents,
) -> None:
    with pytest.raises(DocumentsUnavailableError) as caught:
        await documents.failing(None).load(documents.invoice_id)
    assert isinstance(caught.value, ConnectionError)
    assert own_failure(caught.value) is None  # the batch is redelivered, nothing dead-lettered


# --- what only the HTTP adapter has: its retries, its answers, a real socket -------------------


@pytest.mark.integration
async def test_a_server_error_is_retried_and_the_second_answer_used(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    stored = await InvoicePdfStore(mongo_db).save(
        invoice_id="acme:2024-09", number="CUM-2024-000001", pdf=INVOICE_PDF
    )
    sleeps = Sleeps()
    app: Any = Failing(_invoicing(infra, namespace), 500, 2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        pdfs = HttpInvoicePdfs("http://invoicing", READER, client=client, sleep=sleeps)
        assert await pdfs.load(stored.file_id) == INVOICE_PDF
        assert sleeps.seconds == [0.5, 1.0]  # three requests, backing off

        sleeps.seconds.clear()
        app.times = 3
        with pytest.raises(DocumentsUnavailableError, match=r"3 attempts.*500"):
            await pdfs.load(stored.file_id)
        assert sleeps.seconds == [0.5, 1.0]  # no fourth request


@pytest.mark.integration
async def test_altered_bytes_are_a_mismatch_and_a_refused_token_is_transient(
    infra: Infra, namespace: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    stored = await InvoicePdfStore(mongo_db).save(
        invoice_id="acme:2024-09", number="CUM-2024-000001", pdf=INVOICE_PDF
    )
    await mongo_db[INVOICE_PDF_FILES].update_one(
        {"_id": stored.file_id}, {"$set": {"data": b"%PDF-forged"}}
    )
    sleeps = Sleeps()
    app: Any = _invoicing(infra, namespace)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        pdfs = HttpInvoicePdfs("http://invoicing", READER, client=client, sleep=sleeps)
        with pytest.raises(InvoicePdfMismatchError):
            await pdfs.load(stored.file_id)
        wrong = HttpInvoicePdfs("http://invoicing", "x" * 20, client=client, sleep=sleeps)
        with pytest.raises(DocumentsUnavailableError, match="BILLING_NOTIFY_INVOICING_TOKEN"):
            await wrong.load(stored.file_id)
    assert sleeps.seconds == []  # neither is worth asking again at once


async def test_invoicing_not_listening_is_transient_after_the_attempts() -> None:
    with socket.socket() as sock:  # a port bound, never listened on: connections refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sleeps = Sleeps()
        pdfs = HttpInvoicePdfs(f"http://127.0.0.1:{port}", READER, timeout_seconds=2, sleep=sleeps)
        try:
            with pytest.raises(DocumentsUnavailableError, match="did not answer: ConnectError"):
                await pdfs.load("acme:2024-09.pdf")
        finally:
            await pdfs.aclose()
    assert sleeps.seconds == [0.5, 1.0]
