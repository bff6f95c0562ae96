"""The :class:`~billing_webhooks.ports.WebhookSender` port's contract, run against the fake
(``ScriptedSender``, ``adapters/memory.py``) and the HTTP sender POSTing to a real receiver
(uvicorn on a free loopback port): the request an endpoint receives is signed per Standard
Webhooks (checked with the ``standardwebhooks`` package), and 2xx, 3xx, 4xx, 5xx, a timeout and
an address nobody listens on give the same response and the same delivery outcome."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import floor
from typing import Any, Protocol

import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from webhooks_test_support import endpoint, finalized

from billing_webhooks.adapters.http_sender import HttpWebhookSender
from billing_webhooks.adapters.memory import NoAnswer, ScriptedSender, SignedRequest
from billing_webhooks.domain.deliveries import (
    Attempt,
    Delivery,
    DeliveryState,
    RetryPolicy,
    after_attempt,
    deliveries_for,
)
from billing_webhooks.domain.endpoints import Endpoint, new_secret
from billing_webhooks.domain.messages import message_for
from billing_webhooks.ports import Response, WebhookSender

TIMEOUT_SECONDS = 0.3
SLOW_SECONDS = 1.0
"""How long the real receiver's slow endpoint takes: past the sender's timeout."""
POLICY = RetryPolicy(base=timedelta(seconds=10), maximum=timedelta(hours=1), max_attempts=5)

Answer = int | NoAnswer


class SenderWorld(Protocol):
    """A sender and the endpoints it posts to, each answering from a script."""

    @property
    def sender(self) -> WebhookSender:
        """The sender under test."""
        ...

    def endpoint(self, answers: list[Answer]) -> Endpoint:
        """A new endpoint answering ``answers`` in turn (the last one repeats)."""
        ...

    def received(self, endpoint: Endpoint) -> list[SignedRequest]:
        """The requests ``endpoint`` received, in order."""
        ...


class FakeWorld:
    def __init__(self) -> None:
        self.fake = ScriptedSender()
        self._count = 0

    @property
    def sender(self) -> WebhookSender:
        return self.fake

    def endpoint(self, answers: list[Answer]) -> Endpoint:
        self._count += 1
        chosen = _endpoint(f"ep_{self._count}", f"https://erp.example/hooks/{self._count}")
        self.fake.answers[chosen.endpoint_id] = list(answers)
        return chosen

    def received(self, endpoint: Endpoint) -> list[SignedRequest]:
        return [r for r in self.fake.requests if r.url == endpoint.url]


@dataclass
class Receiver:
    """A real HTTP receiver: each path answers from its script (``NoAnswer.TIMEOUT``: it
    answers 200 too late); a redirect points at a path that would accept."""

    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    received: dict[str, list[SignedRequest]] = field(default_factory=dict)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.received.setdefault(path, []).append(SignedRequest(path, headers, body))
        script = self.scripts.get(path) or [204]
        answer = script.pop(0) if len(script) > 1 else script[0]
        status = 200
        if answer is NoAnswer.TIMEOUT:
            await asyncio.sleep(SLOW_SECONDS)
        elif isinstance(answer, int):
            status = answer
        location = [(b"location", b"/accepting")] if 300 <= status < 400 else []
        await send({"type": "http.response.start", "status": status, "headers": location})
        await send({"type": "http.response.body", "body": b""})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpWorld:
    def __init__(self, receiver: Receiver, port: int, http: HttpWebhookSender) -> None:
        self.receiver = receiver
        self.port = port
        self.http = http
        self._paths: dict[str, str] = {}
        self._prefix = f"/{uuid.uuid4().hex[:8]}"  # the receiver serves the whole module

    @property
    def sender(self) -> WebhookSender:
        return self.http

    def endpoint(self, answers: list[Answer]) -> Endpoint:
        endpoint_id = f"ep_{len(self._paths) + 1}"
        path = self._paths[endpoint_id] = f"{self._prefix}/hooks/{endpoint_id}"
        port = self.port
        if NoAnswer.UNREACHABLE in answers:
            port = _free_port()  # nobody listens there
        self.receiver.scripts[path] = list(answers)
        return _endpoint(endpoint_id, f"http://127.0.0.1:{port}{path}")

    def received(self, endpoint: Endpoint) -> list[SignedRequest]:
        return list(self.receiver.received.get(self._paths[endpoint.endpoint_id], []))


@pytest.fixture(scope="module")
async def receiving() -> AsyncIterator[tuple[Receiver, int, HttpWebhookSender]]:
    """One real receiver and one HTTP sender for the module's HTTP runs (each run has its own
    paths; an httpx client takes ~0.2 s to make)."""
    receiver, port = Receiver(), _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.02)
    http = HttpWebhookSender(TIMEOUT_SECONDS)
    try:
        yield receiver, port, http
    finally:
        await http.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture(params=["memory", "http"])
def world(
    request: pytest.FixtureRequest, receiving: tuple[Receiver, int, HttpWebhookSender]
) -> SenderWorld:
    return FakeWorld() if request.param == "memory" else HttpWorld(*receiving)


def _endpoint(endpoint_id: str, url: str) -> Endpoint:
    chosen = endpoint(endpoint_id, url=url)
    assert chosen.secret.startswith("whsec_")
    return chosen


def _delivery(to: Endpoint) -> Delivery:
    message = message_for(finalized())
    [delivery] = deliveries_for(message, [to], datetime.now(UTC), POLICY)
    return delivery


def _outcome(delivery: Delivery, response: Response, at: datetime) -> DeliveryState:
    attempt = Attempt(
        delivery_id=delivery.delivery_id,
        endpoint_id=delivery.endpoint_id,
        message_id=delivery.message_id,
        number=1,
        at=at,
        status_code=response.status_code,
        error=response.error,
        duration_ms=response.duration_ms,
    )
    return after_attempt(delivery, attempt, POLICY).state


async def test_the_request_is_signed_per_standard_webhooks(world: SenderWorld) -> None:
    to = world.endpoint([204])
    delivery = _delivery(to)
    first = datetime.now(UTC).replace(microsecond=0)
    second = first + timedelta(seconds=90)

    await world.sender.send(to, delivery, first)
    await world.sender.send(to, delivery, second)

    requests = world.received(to)
    assert len(requests) == 2
    for request, at in zip(requests, (first, second), strict=True):
        assert request.body == delivery.body.encode()
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == delivery.message_id, "the same on every retry"
        assert request.headers["webhook-timestamp"] == str(floor(at.timestamp()))
        verified = Webhook(to.secret).verify(request.body, request.headers)
        assert verified == json.loads(delivery.body)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(request.body, request.headers)
    assert requests[0].headers["webhook-signature"] != requests[1].headers["webhook-signature"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, DeliveryState.DELIVERED),
        (202, DeliveryState.DELIVERED),
        (204, DeliveryState.DELIVERED),
        (301, DeliveryState.PENDING),
        (308, DeliveryState.PENDING),
        (400, DeliveryState.PENDING),
        (410, DeliveryState.PENDING),
        (429, DeliveryState.PENDING),
        (500, DeliveryState.PENDING),
        (503, DeliveryState.PENDING),
    ],
)
async def test_an_answer_is_its_status_and_only_2xx_delivers(
    world: SenderWorld, status: int, outcome: DeliveryState
) -> None:
    to = world.endpoint([status])
    delivery = _delivery(to)
    at = datetime.now(UTC)

    response = await world.sender.send(to, delivery, at)

    assert response.status_code == status
    assert response.error == (None if 200 <= status < 300 else f"HTTP {status}")
    assert response.duration_ms >= 0
    assert _outcome(delivery, response, at) is outcome
    assert len(world.received(to)) == 1, "a redirect is not followed"


async def test_no_answer_within_the_timeout_is_a_failed_attempt(world: SenderWorld) -> None:
    to = world.endpoint([NoAnswer.TIMEOUT])
    delivery = _delivery(to)
    at = datetime.now(UTC)

    response = await world.sender.send(to, delivery, at)

    assert response.status_code is None
    assert response.error is not None
    assert response.error.startswith("ReadTimeout")
    assert _outcome(delivery, response, at) is DeliveryState.PENDING
    assert len(world.received(to)) == 1, "the endpoint got the request, its answer was late"


async def test_an_address_nobody_listens_on_is_a_failed_attempt(world: SenderWorld) -> None:
    to = world.endpoint([NoAnswer.UNREACHABLE])
    delivery = _delivery(to)
    at = datetime.now(UTC)

    response = await world.sender.send(to, delivery, at)

    assert response.status_code is None
    assert response.error is not None
    assert response.error.startswith("ConnectError")
    assert _outcome(delivery, response, at) is DeliveryState.PENDING
    assert world.received(to) == []
