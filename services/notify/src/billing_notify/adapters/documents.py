"""Reads issued documents (invoice and credit-note PDFs) through invoicing's API, by the file id
the event carries: ``GET /v1/documents/{file_id}`` with a document-reader token, the one
credential invoicing gives notify (it reads documents and nothing else; ``docs/api.md``).

Invoicing owns the documents' storage; it stores a PDF before it publishes the event naming it,
so a 404 is an error of the data, not a race: :class:`InvoicePdfMissingError` (permanent: the
event is dead-lettered). Bytes that no longer match the checksum invoicing recorded (409) are
:class:`InvoicePdfMismatchError`; the use case also checks them against the event's checksum.
Invoicing not answering, answering 5xx or 429, is retried a few times here to ride out a blip,
then :class:`~billing_notify.ports.DocumentsUnavailableError`, transient like a database that
does not answer: the event is tried again later. A refused token (401, 403) is notify's
configuration, not the event's fault: transient too, at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import httpx

from billing_notify.domain.errors import InvoicePdfMismatchError, InvoicePdfMissingError
from billing_notify.ports import DocumentsUnavailableError

Sleep = Callable[[float], Awaitable[None]]


def _worth_asking_again(status: int) -> bool:
    """A 5xx or 429: invoicing (or a proxy before it) failing or busy for now."""
    return status >= httpx.codes.INTERNAL_SERVER_ERROR or status == httpx.codes.TOO_MANY_REQUESTS


def _missing(file_id: str) -> InvoicePdfMissingError:
    return InvoicePdfMissingError(f"no document is stored with file id {file_id!r}")


def _detail(answer: httpx.Response) -> str:
    try:
        found = answer.json().get("detail")
    except (ValueError, AttributeError):
        found = None
    return str(found) if found else answer.text[:200]


class HttpInvoicePdfs:
    """:class:`~billing_notify.ports.InvoicePdfs` over invoicing's HTTP API.

    ``attempts`` requests at most per load, ``backoff_seconds`` apart (doubled each time);
    each request is bounded by ``timeout_seconds``. The client is this adapter's own unless
    one is given (tests hand one over an ASGI transport); :meth:`aclose` closes its own.
    """

    def __init__(
        self,
        invoicing_url: str,
        token: str,
        *,
        timeout_seconds: float = 10.0,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        client: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._base = invoicing_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._sleep = sleep

    async def aclose(self) -> None:
        """Close the HTTP client if this adapter made it."""
        if self._own_client:
            await self._client.aclose()

    async def load(self, file_id: str) -> bytes:
        """See :class:`~billing_notify.ports.InvoicePdfs`."""
        url = f"{self._base}/v1/documents/{quote(file_id, safe='')}"
        why = ""
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                answer = await self._client.get(url, headers=self._headers)
            except httpx.TransportError as exc:  # refused, reset, timed out
                why = f"invoicing did not answer: {type(exc).__name__}: {exc}"
                continue
            if answer.status_code == httpx.codes.OK:
                return answer.content
            if _worth_asking_again(answer.status_code):
                why = f"invoicing answered {answer.status_code}: {_detail(answer)}"
                continue
            self._refuse(answer, file_id)
        msg = f"document {file_id!r} not read after {self._attempts} attempts: {why}"
        raise DocumentsUnavailableError(msg)

    @staticmethod
    def _refuse(answer: httpx.Response, file_id: str) -> None:
        """Raise what a final answer other than 200 means."""
        code = answer.status_code
        if code == httpx.codes.NOT_FOUND:
            raise _missing(file_id)
        if code == httpx.codes.CONFLICT:
            raise InvoicePdfMismatchError(f"document {file_id!r}: {_detail(answer)}")
        if code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            msg = (
                f"invoicing refused notify's token ({code}): BILLING_NOTIFY_INVOICING_TOKEN must "
                "be one of invoicing's BILLING_INVOICING_DOCUMENT_READER_TOKENS"
            )
            raise DocumentsUnavailableError(msg)
        msg = f"document {file_id!r}: invoicing answered {code}: {_detail(answer)}"
        raise InvoicePdfMissingError(msg)
