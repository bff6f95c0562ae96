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
from typing import Any, TypeVar

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from prometheus_client import CollectorRegistry, make_asgi_app
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_runtime.consumer import BatchHandler, Consumer
from billing_runtime.kafka import (
    DeadLetters,
    EventPublisher,
    Publisher,
    ensure_topics,
    make_broker,
    raw_batch_decoder,
)
from billing_runtime.mongo import make_mongo_client
from billing_runtime.observability import Metrics, configure_logging
from billing_runtime.settings import ServiceSettings
from billing_runtime.tracing import configure_tracing
from billing_schemas.channels import Channel, ChannelError, ConsumerGroup

HEALTH_TIMEOUT_SECONDS = 3.0

Document = dict[str, Any]
E = TypeVar("E")


@dataclass
class Runtime:
    """The adapters one service process shares."""

    service: str
    settings: ServiceSettings
    registry: CollectorRegistry
    broker: KafkaBroker
    mongo: AsyncMongoClient[Document]
    dead_letters: DeadLetters
    publisher: Publisher
    metrics: Metrics
    topics: list[str] = field(default_factory=list)
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    consumers: list[Consumer[Any]] = field(default_factory=list)
    """Every consumer declared with :meth:`consumer`, in order."""
    consumes: dict[str, Any] = field(default_factory=dict)
    """Subscriber title -> the event type its handler validates each message against.

    Handlers take raw bytes (see ``raw_batch_decoder``), so FastStream cannot see the payload
    type; the AsyncAPI generator documents it from here."""

    @property
    def db(self) -> AsyncDatabase[Document]:
        """The service's database."""
        return self.mongo[self.settings.mongodb_database]

    def consumer(
        self,
        *channels: Channel[E],
        group: ConsumerGroup,
        title: str,
        description: str,
        max_records: int | None = None,
    ) -> Callable[[BatchHandler[E]], Consumer[E]]:
        """Decorator: consume ``channels`` with a typed batch handler, the one way every service
        does (see :mod:`billing_runtime.consumer` for what it takes care of).

        The group must be declared on every channel (:class:`~billing_schemas.channels.
        ChannelError` otherwise). On the broker: batches (``max_records``, default from the
        settings), the group's name prefixed by the namespace, the earliest offset for a new
        group, offsets committed only after the batch was handled (``NACK_ON_ERROR``: an
        exception redelivers it).
        """
        for channel in channels:
            channel.require(group)

        def register(handler: BatchHandler[E]) -> Consumer[E]:
            return self._register(
                channels,
                handler,
                group=group,
                title=title,
                description=description,
                max_records=max_records,
                decode=True,
            )

        return register

    def raw_consumer(
        self,
        channel: Channel[Any],
        *,
        group: ConsumerGroup,
        title: str,
        description: str,
        max_records: int | None = None,
    ) -> Callable[[BatchHandler[bytes]], Consumer[bytes]]:
        """:meth:`consumer` for a handler that validates each message's bytes itself (and
        says why it rejects one); everything else is the same."""
        channel.require(group)

        def register(handler: BatchHandler[bytes]) -> Consumer[bytes]:
            return self._register(
                (channel,),
                handler,
                group=group,
                title=title,
                description=description,
                max_records=max_records,
                decode=False,
            )

        return register

    def _register(
        self,
        channels: tuple[Channel[Any], ...],
        handler: BatchHandler[Any],
        *,
        group: ConsumerGroup,
        title: str,
        description: str,
        max_records: int | None,
        decode: bool,
    ) -> Consumer[Any]:
        ns = self.settings.topic_namespace
        base: str | None = getattr(self.settings, "consumer_group", None)
        consumer: Consumer[Any] = Consumer(
            runtime=self,
            channels=channels,
            group=group,
            group_id=group.name(base, ns),
            title=title,
            description=description,
            handler=handler,
            max_records=max_records or self.settings.batch_max_records,
            decode=decode,
        )
        self.consumers.append(consumer)
        self.topics += consumer.topics
        for channel in channels:
            key = title if len(channels) == 1 else f"{title}:{channel.topic.value}"
            self.consumes[key] = channel.payload
            declare_output(
                self,
                channel,
                dead_letter=True,
                description=f"{channel.payload_name} messages {self.service} could not "
                "process: original bytes, error in x-error.",
            )

        @self.broker.subscriber(
            *consumer.topics,
            group_id=consumer.group_id,
            batch=True,
            max_records=consumer.max_records,
            batch_timeout_ms=self.settings.batch_timeout_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw_batch_decoder,
            title=title,
            description=description,
        )
        async def on_batch(body: list[bytes], msg: KafkaMessage) -> None:
            del body  # the raw records carry the same bytes plus offsets for dead letters
            await consumer.process(msg.raw_message)

        return consumer


def declare_output(
    runtime: Runtime,
    channel: Channel[Any],
    *,
    payload: type[Any] | None = None,
    dead_letter: bool = False,
    description: str | None = None,
) -> None:
    """Declare a channel the service writes to, for its AsyncAPI document and topic creation.

    The service publishes through ``Runtime.publisher`` (batched, keyed); this declaration only
    documents the channel and its payload (``payload`` when the service writes only one of the
    channel's event types: it must be one of them), and makes sure the topic exists at
    start-up (with its dead-letter topic, for its consumers). ``dead_letter`` declares the
    channel's dead-letter topic instead.
    """
    ns = runtime.settings.topic_namespace
    if payload is not None and payload not in channel.event_types:
        msg = f"{payload.__name__} is not carried by {channel.topic.value}"
        raise ChannelError(msg)
    topic = channel.dead_letter_name(ns) if dead_letter else channel.name(ns)
    runtime.topics += [topic, channel.dead_letter_name(ns)]
    runtime.broker.publisher(
        topic,
        schema=bytes if dead_letter else (payload or channel.payload),
        title=f"{topic}:publish",
        description=description or channel.description,
    )


def create_runtime(
    service: str, settings: ServiceSettings, publisher: Publisher | None = None
) -> Runtime:
    """Build the broker, database client and publisher of a service (Kafka's, unless an other
    one is given: an in-memory broker in tests)."""
    registry = CollectorRegistry()
    broker = make_broker(settings, service, registry)
    metrics = Metrics.create(registry)
    publisher = publisher or EventPublisher(settings.kafka_bootstrap_servers, f"billing-{service}")
    return Runtime(
        service=service,
        settings=settings,
        registry=registry,
        broker=broker,
        mongo=make_mongo_client(settings.mongodb_url),
        dead_letters=DeadLetters(publisher, service, metrics),
        publisher=publisher,
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
