"""In-memory fakes of the webhook ports, for unit tests (same contract tests as the real ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from enum import StrEnum

from billing_webhooks.adapters.http_sender import signed_headers
from billing_webhooks.adapters.mailer import disabled_email
from billing_webhooks.domain.audit import AuditRecord
from billing_webhooks.domain.deliveries import Attempt, Delivery, DeliveryState
from billing_webhooks.domain.endpoints import Endpoint
from billing_webhooks.ports import Response

NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)


class InMemoryEndpoints:
    """Fake :class:`~billing_webhooks.ports.EndpointStore`."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    async def add(self, endpoint: Endpoint) -> None:
        if endpoint.endpoint_id in self.endpoints:
            msg = f"duplicate endpoint {endpoint.endpoint_id}"
            raise ValueError(msg)
        self.endpoints[endpoint.endpoint_id] = endpoint

    async def get(self, endpoint_id: str) -> Endpoint | None:
        return self.endpoints.get(endpoint_id)

    async def all(self, customer_id: str | None = None) -> list[Endpoint]:
        found = [
            e
            for e in self.endpoints.values()
            if customer_id is None or e.customer_id == customer_id
        ]
        return sorted(found, key=lambda e: (e.created_at, e.endpoint_id))

    async def save(self, endpoint: Endpoint) -> None:
        self.endpoints[endpoint.endpoint_id] = endpoint


class InMemoryDeliveries:
    """Fake :class:`~billing_webhooks.ports.DeliveryStore`."""

    def __init__(self) -> None:
        self.log: dict[str, Delivery] = {}
        self.queue: dict[str, Delivery] = {}
        self.leases: dict[str, datetime] = {}
        self.attempt_log: list[Attempt] = []

    async def enqueue(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        new: list[Delivery] = []
        for delivery in deliveries:
            if delivery.delivery_id in self.log:
                continue
            self.log[delivery.delivery_id] = delivery
            self.queue[delivery.delivery_id] = delivery
            self.leases[delivery.delivery_id] = NO_LEASE
            new.append(delivery)
        return new

    async def pending(self) -> list[Delivery]:
        return list(self.queue.values())

    async def claim(self, delivery: Delivery, now: datetime, until: datetime) -> bool:
        lease = self.leases.get(delivery.delivery_id)
        if delivery.delivery_id not in self.queue or lease is None or lease > now:
            return False
        self.leases[delivery.delivery_id] = until
        return True

    async def record(self, delivery: Delivery, attempt: Attempt | None) -> None:
        if attempt is not None:
            self.attempt_log.append(attempt)
        self.log[delivery.delivery_id] = delivery
        if delivery.state is DeliveryState.PENDING:
            self.queue[delivery.delivery_id] = delivery
            self.leases[delivery.delivery_id] = NO_LEASE
        else:
            self.queue.pop(delivery.delivery_id, None)
            self.leases.pop(delivery.delivery_id, None)

    async def deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        customer_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        found = [
            d
            for d in self.log.values()
            if (endpoint_id is None or d.endpoint_id == endpoint_id)
            and (customer_id is None or d.customer_id == customer_id)
        ]
        found.sort(key=lambda d: d.delivery_id)
        found.sort(key=lambda d: d.created_at, reverse=True)
        return found[:limit]

    async def get(self, delivery_id: str) -> Delivery | None:
        return self.log.get(delivery_id)

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        return sorted(
            (a for a in self.attempt_log if a.delivery_id == delivery_id), key=lambda a: a.number
        )


class NoAnswer(StrEnum):
    """An endpoint that does not answer, named as the HTTP sender names the failure."""

    TIMEOUT = "ReadTimeout"
    """It took the request and answered nothing within the timeout."""
    UNREACHABLE = "ConnectError: All connection attempts failed"
    """Nothing listens at its address."""


@dataclass(frozen=True)
class SignedRequest:
    """A POST that reached an endpoint: its URL, headers and body."""

    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedSender:
    """Fake :class:`~billing_webhooks.ports.WebhookSender`: each endpoint answers from a
    script (a status code, or :class:`NoAnswer`; the last answer repeats, 204 without one),
    turned into a :class:`Response` as the HTTP sender does. ``sent`` keeps every attempt,
    ``requests`` the signed requests the endpoints received."""

    answers: dict[str, list[int | NoAnswer]] = field(default_factory=dict)
    sent: list[tuple[str, Delivery, datetime]] = field(default_factory=list)
    requests: list[SignedRequest] = field(default_factory=list)

    async def send(self, endpoint: Endpoint, delivery: Delivery, at: datetime) -> Response:
        self.sent.append((endpoint.endpoint_id, delivery, at))
        script = self.answers.get(endpoint.endpoint_id) or [204]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if answer is not NoAnswer.UNREACHABLE:
            headers = signed_headers(endpoint, delivery, at)
            self.requests.append(SignedRequest(endpoint.url, headers, delivery.body.encode()))
        if isinstance(answer, NoAnswer):
            return Response(None, answer.value, 1.0)
        return Response.answered(answer, 1.0)


@dataclass(frozen=True)
class SentAlert:
    """An email that reached the operators: the envelope's recipients and the message."""

    recipients: tuple[str, ...]
    message: EmailMessage


@dataclass
class RecordedAlerts:
    """Fake :class:`~billing_webhooks.ports.OperatorAlerts`: keeps the emails the operators
    would get (the SMTP adapter's), and which endpoints they were told of. As there, nobody is
    told without ``operators``, and a mail system that fails (``reachable=False``: down, or
    refusing the email) loses the alert without raising."""

    operators: list[str] = field(default_factory=lambda: ["ops@billing.invalid"])
    sender: str = "billing@billing.invalid"
    reachable: bool = True
    disabled: list[Endpoint] = field(default_factory=list)
    emails: list[SentAlert] = field(default_factory=list)

    async def endpoint_disabled(self, endpoint: Endpoint) -> None:
        if not self.operators or not self.reachable:
            return
        message = disabled_email(endpoint, self.sender, self.operators)
        self.emails.append(SentAlert(tuple(self.operators), message))
        self.disabled.append(endpoint)


class InMemoryAuditLog:
    """Fake :class:`~billing_webhooks.ports.AuditLog`."""

    def __init__(self) -> None:
        self.records: dict[str, AuditRecord] = {}

    async def append(self, records: Sequence[AuditRecord]) -> int:
        new = 0
        for record in records:
            if record.audit_id not in self.records:
                self.records[record.audit_id] = record
                new += 1
        return new

    async def read(self, *, since: datetime | None = None, limit: int = 1000) -> list[AuditRecord]:
        found = [r for r in self.records.values() if since is None or r.at >= since]
        return sorted(found, key=lambda r: (r.at, r.audit_id))[:limit]
