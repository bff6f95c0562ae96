"""Sends deliveries over HTTP(S), signed per the Standard Webhooks specification.

Headers: ``webhook-id`` (the event id, the same on every retry), ``webhook-timestamp`` (Unix
seconds of this attempt) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`` with the endpoint's secret), computed by the ``standardwebhooks``
package; ``docs/webhooks.md`` shows a receiver verifying them. Redirects are not followed (a
redirected delivery fails: the receiver must give its final URL).
"""

from __future__ import annotations

import time
from datetime import datetime
from math import floor

import httpx
from standardwebhooks.webhooks import Webhook

from billing_webhooks.domain.deliveries import Delivery
from billing_webhooks.domain.endpoints import Endpoint
from billing_webhooks.ports import Response

USER_AGENT = "billing-webhooks/1"


def signed_headers(endpoint: Endpoint, delivery: Delivery, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt of ``delivery`` at ``at`` (UTC)."""
    signature = Webhook(endpoint.secret).sign(delivery.message_id, at, delivery.body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": signature,
    }


class HttpWebhookSender:
    """:class:`~billing_webhooks.ports.WebhookSender` over httpx (one pooled client)."""

    def __init__(self, timeout_seconds: float) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), follow_redirects=False
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def send(self, endpoint: Endpoint, delivery: Delivery, at: datetime) -> Response:
        """See the port: any answer is a status; no answer is an error naming why."""
        headers = signed_headers(endpoint, delivery, at)
        started = time.perf_counter()
        try:
            answer = await self._client.post(
                endpoint.url, content=delivery.body.encode(), headers=headers
            )
        except httpx.HTTPError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return Response(None, f"{type(exc).__name__}: {exc}".rstrip(": "), elapsed)
        return Response.answered(answer.status_code, (time.perf_counter() - started) * 1000)
