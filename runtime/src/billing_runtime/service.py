"""The shape every service has at run time: broker, database, dead letters, health and metrics.

A service's ``app.py`` builds a :class:`Runtime`, registers its handlers on ``runtime.broker``
and turns it into an ASGI app with :func:`asgi_app`. The app serves:

* ``/health``: readiness, 200 when both the broker and the database answer, else 503 with which;
* ``/live``: liveness, 204 while the process serves HTTP;
* ``/metrics``: Prometheus (FastStream's consumer metrics plus the service's own counters).

Shutdown is graceful: uvicorn stops on SIGTERM, the broker waits up to
``graceful_timeout_seconds`` for in-flight batches before it leaves the consumer group.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from prometheus_client import CollectorRegistry, make_asgi_app
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime.kafka import (
    DeadLetters,
    EventPublisher,
    ensure_topics,
    make_broker,
    raw_batch_decoder,
)
from billing_runtime.observability import Metrics, configure_logging
from billing_runtime.settings import ServiceSettings
from billing_runtime.tracing import configure_tracing

HEALTH_TIMEOUT_SECONDS = 3.0

Document = dict[str, Any]


def make_mongo_client(url: str) -> AsyncMongoClient[Document]:
    """An async MongoDB client (PyMongo's native async API) with timezone-aware datetimes."""
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10_000)


@dataclass
class Runtime:
    """The adapters one service process shares."""

    service: str
    settings: ServiceSettings
    registry: CollectorRegistry
    broker: KafkaBroker
    mongo: AsyncMongoClient[Document]
    dead_letters: DeadLetters
    publisher: EventPublisher
    metrics: Metrics
    topics: list[str] = field(default_factory=list)
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    consumes: dict[str, Any] = field(default_factory=dict)
    """Subscriber title -> the event type its handler validates each message against.

    Handlers take raw bytes (see ``raw_batch_decoder``), so FastStream cannot see the payload
    type; the AsyncAPI generator documents it from here."""

    @property
    def db(self) -> AsyncDatabase[Document]:
        """The service's database."""
        return self.mongo[self.settings.mongodb_database]

    def batch_subscriber(
        self,
        topic: str,
        *,
        group: str,
        title: str,
        description: str,
        max_records: int | None = None,
    ) -> Callable[[Callable[..., Awaitable[None]]], object]:
        """Decorator: consume ``topic`` the one way every service does.

        Batches (``max_records``, default from the settings), an explicit consumer group
        (prefixed by the namespace), from the earliest offset for a new group, offsets committed
        only after the handler returned (``NACK_ON_ERROR``: an exception redelivers the batch),
        and the raw bytes handed over (see ``raw_batch_decoder``) so that each message is
        validated, and dead-lettered if bad, on its own.
        """
        subscriber: Callable[[Callable[..., Awaitable[None]]], object] = self.broker.subscriber(
            topic,
            group_id=f"{self.settings.topic_namespace}{group}",
            batch=True,
            max_records=max_records or self.settings.batch_max_records,
            batch_timeout_ms=self.settings.batch_timeout_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw_batch_decoder,
            title=title,
            description=description,
        )
        return subscriber


def declare_output(runtime: Runtime, topic: str, schema: Any, description: str) -> None:
    """Declare a topic the service writes to, for its AsyncAPI document and topic creation.

    The service publishes through ``Runtime.publisher`` (batched, keyed); this declaration only
    documents the channel and its payload, and makes sure the topic exists at start-up.
    """
    runtime.topics.append(topic)
    runtime.broker.publisher(
        topic, schema=schema, title=f"{topic}:publish", description=description
    )


def create_runtime(service: str, settings: ServiceSettings) -> Runtime:
    """Build the broker, database client and dead-letter publisher of a service."""
    registry = CollectorRegistry()
    broker = make_broker(settings, service, registry)
    metrics = Metrics.create(registry)
    return Runtime(
        service=service,
        settings=settings,
        registry=registry,
        broker=broker,
        mongo=make_mongo_client(settings.mongodb_url),
        dead_letters=DeadLetters(broker, service, metrics),
        publisher=EventPublisher(settings.kafka_bootstrap_servers, f"billing-{service}"),
        metrics=metrics,
    )


async def check_health(runtime: Runtime) -> dict[str, str]:
    """Ping the broker and the database; a dict of component -> "ok" or the error."""

    async def kafka() -> str:
        ok = await runtime.broker.ping(timeout=HEALTH_TIMEOUT_SECONDS)
        return "ok" if ok else "unreachable"

    async def mongodb() -> str:
        try:
            await asyncio.wait_for(
                runtime.mongo.admin.command("ping"), timeout=HEALTH_TIMEOUT_SECONDS
            )
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return f"unreachable: {type(exc).__name__}"
        return "ok"

    results = await asyncio.gather(kafka(), mongodb())
    return {"kafka": results[0], "mongodb": results[1]}


class ServiceApp(AsgiFastStream):
    """FastStream's ASGI app, plus apps mounted under a path prefix.

    ``AsgiFastStream`` routes match exact paths only; an HTTP API with path parameters
    (``/v1/invoices/{number}``) is mounted here under its prefix instead: requests whose path is
    the prefix or below it go to that app; everything else, the lifespan included, stays with
    FastStream, so the broker starts and stops exactly once.
    """

    def __init__(
        self, *args: Any, prefixed: Sequence[tuple[str, ASGIApp]] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.prefixed = list(prefixed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Prefixed apps first, then FastStream's routes."""
        if scope["type"] == "http":
            path = str(scope["path"])
            for prefix, app in self.prefixed:
                if path == prefix or path.startswith(f"{prefix}/"):
                    await app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def asgi_app(
    runtime: Runtime,
    *,
    extra_routes: Sequence[tuple[str, ASGIApp]] = (),
    prefixed: Sequence[tuple[str, ASGIApp]] = (),
) -> AsgiFastStream:
    """The service as an ASGI app: the broker's consumers plus health, liveness and metrics;
    ``extra_routes`` answer exact paths, ``prefixed`` apps every path under their prefix."""

    @get(include_in_schema=False)
    async def health(scope: Scope) -> AsgiResponse:
        del scope
        status = await check_health(runtime)
        ready = all(v == "ok" for v in status.values())
        body = json.dumps({"service": runtime.service, "ready": ready, **status}).encode()
        return AsgiResponse(
            body, 200 if ready else 503, headers={"content-type": "application/json"}
        )

    @get(include_in_schema=False)
    async def live(scope: Scope) -> AsgiResponse:
        del scope
        return AsgiResponse(b"", 204)

    async def create_topics() -> None:
        await ensure_topics(runtime.settings.kafka_bootstrap_servers, runtime.topics)
        await runtime.publisher.start()

    async def stop_publisher() -> None:
        await runtime.publisher.stop()

    async def close_mongo() -> None:
        await runtime.mongo.close()

    return ServiceApp(
        runtime.broker,
        prefixed=prefixed,
        asgi_routes=[
            ("/health", health),
            ("/live", live),
            ("/metrics", make_asgi_app(runtime.registry)),
            *extra_routes,
        ],
        logger=logging.getLogger(f"billing.{runtime.service}"),
        on_startup=[create_topics, *runtime.on_startup],
        after_shutdown=[*runtime.on_shutdown, stop_publisher, close_mongo],
    )


def serve(app: Any, settings: ServiceSettings, service: str) -> None:
    """Run an ASGI app with uvicorn until SIGTERM/SIGINT, then shut down gracefully."""
    configure_logging(settings.log_level, settings.log_format, service)
    configure_tracing(service)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=int(settings.graceful_timeout_seconds) + 5,
    )
