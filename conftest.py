"""Session-wide test fixtures: the real broker, the real database, a real SMTP server.

Where the infrastructure comes from, in this order:

1. addresses given in ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URL``;
2. the local processes under ``var/`` (``scripts/infra.sh up`` starts them once, or reuses them);
3. testcontainers (Kafka and MongoDB images) where a Docker engine answers.

The broker is started once per session; each test gets its own topic namespace and database,
so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

ROOT = Path(__file__).resolve().parent
INFRA = ROOT / "scripts" / "infra.sh"
LOCAL_KAFKA = "127.0.0.1:19092"
LOCAL_MONGODB = "mongodb://127.0.0.1:27117/"


@dataclass(frozen=True)
class Infra:
    """Addresses of the real infrastructure the tests use."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    origin: str


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


def _local_infra_possible() -> bool:
    return all(shutil.which(tool) for tool in ("java", "mvn", "go"))


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """The broker and database for this session (see the module docstring for the order)."""
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_mongo = os.environ.get("MONGODB_URL")
    with ExitStack() as stack:
        if env_kafka and env_mongo:
            yield Infra(env_kafka, env_mongo, "environment")
            return
        if _local_infra_possible():
            subprocess.run(["bash", str(INFRA), "up"], check=True, cwd=ROOT)
            yield Infra(env_kafka or LOCAL_KAFKA, env_mongo or LOCAL_MONGODB, "local processes")
            return
        if _docker_answers():
            from testcontainers.community.kafka import KafkaContainer
            from testcontainers.community.mongodb import MongoDbContainer

            kafka: Any = stack.enter_context(KafkaContainer().with_kraft())
            mongo: Any = stack.enter_context(MongoDbContainer("mongo:8"))
            yield Infra(
                env_kafka or kafka.get_bootstrap_server(),
                env_mongo or mongo.get_connection_url(),
                "testcontainers",
            )
            return
        pytest.fail(
            "no Kafka/MongoDB for the integration tests: set KAFKA_BOOTSTRAP_SERVERS and "
            "MONGODB_URL, install a JDK 17+, Maven and Go for the local stack, or run Docker"
        )


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique prefix for this test's topics and database. When the test used the broker, its
    topics are deleted afterwards: a broker holding every test's topics runs out of file
    descriptors (one per partition; the local stack's broker has 4 partitions a topic)."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    if "infra" in request.fixturenames:
        bootstrap = request.getfixturevalue("infra").kafka_bootstrap_servers
        # a loop of its own in a thread: the fixture is synchronous (some fixtures take it by
        # getfixturevalue), the test's loop may still be running
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, delete_topics(bootstrap, name)).result(timeout=120)


async def delete_topics(bootstrap_servers: str, namespace: str) -> None:
    """Delete the topics whose names start with ``namespace`` (a test's, when it is over)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        doomed = [t for t in await admin.list_topics() if t.startswith(namespace)]
        if doomed:
            await admin.delete_topics(doomed)
    except KafkaError:
        pass  # a broker a test stopped: its topics go with the next clean-up of the stack
    finally:
        await admin.close()


@pytest.fixture
async def mongo_db(infra: Infra, namespace: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """This test's own database, dropped afterwards."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        yield client[namespace]
        await client.drop_database(namespace)
    finally:
        await client.close()


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) for one test; ``directory`` receives ``.eml`` files."""

    host: str
    port: int
    directory: Path

    def messages(self) -> list[Path]:
        """The stored messages, oldest first."""
        return sorted(self.directory.glob("*.eml"))


@pytest.fixture
async def smtp_sink(tmp_path: Path) -> AsyncIterator[SmtpSink]:
    """A real SMTP server on a free loopback port, writing to a temporary folder."""
    from billing_devtools.mail_sink import MaildirSink, serve

    directory = tmp_path / "mail"
    server = await serve(MaildirSink(directory), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield SmtpSink("127.0.0.1", port, directory)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


SERVICES = ("ingest", "rating", "invoicing", "notify")
BILLING = ROOT / ".venv" / "bin" / "billing"
PYTHON = ROOT / ".venv" / "bin" / "python"


class Pipeline:
    """The four services as real processes on the real broker and database, for one test.

    Topics, consumer groups and the database are this test's own (``namespace``); mail goes to
    the test's SMTP sink. Services can be killed (SIGKILL) and started again.
    """

    def __init__(self, infra: Infra, namespace: str, smtp: SmtpSink, logs: Path) -> None:
        self.infra = infra
        self.namespace = namespace
        self.smtp = smtp
        self.logs = logs
        self.ports = {name: free_port() for name in SERVICES}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.extra_env: dict[str, str] = {}
        self.document_reader_token = secrets.token_urlsafe(24)

    def env(self) -> dict[str, str]:
        """Environment of every service and CLI call of this pipeline."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
        for prefix in ("BILLING_", *(f"BILLING_{s.upper()}_" for s in SERVICES)):
            env[f"{prefix}KAFKA_BOOTSTRAP_SERVERS"] = self.infra.kafka_bootstrap_servers
            env[f"{prefix}MONGODB_URL"] = self.infra.mongodb_url
            env[f"{prefix}MONGODB_DATABASE"] = self.namespace
            env[f"{prefix}TOPIC_NAMESPACE"] = f"{self.namespace}."
        for name, port in self.ports.items():
            env[f"BILLING_{name.upper()}_HTTP_PORT"] = str(port)
        env["BILLING_NOTIFY_SMTP_HOST"] = self.smtp.host
        env["BILLING_NOTIFY_SMTP_PORT"] = str(self.smtp.port)
        # notify reads the PDFs it attaches from invoicing's API, with a document-reader token
        env["BILLING_NOTIFY_INVOICING_URL"] = f"http://127.0.0.1:{self.ports['invoicing']}"
        env["BILLING_NOTIFY_INVOICING_TOKEN"] = self.document_reader_token
        env["BILLING_INVOICING_DOCUMENT_READER_TOKENS"] = self.document_reader_token
        # a test machine is local development: usage events without a token, unless a test
        # configures tokens (and sets this to "false") in extra_env
        env["BILLING_INGEST_ALLOW_ANONYMOUS"] = "true"
        env.update(self.extra_env)
        return env

    async def start(self, *names: str) -> None:
        """Start services (all by default) and wait until each reports healthy."""
        import httpx

        names = names or SERVICES
        for name in names:
            with (self.logs / f"{name}.log").open("ab") as log:  # the child keeps its own copy
                self.processes[name] = await asyncio.create_subprocess_exec(
                    str(PYTHON), "-m", f"billing_{name}", env=self.env(), stdout=log, stderr=log
                )
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name in names:
                url = f"http://127.0.0.1:{self.ports[name]}/health"
                for _ in range(600):
                    if self.processes[name].returncode is not None:
                        raise RuntimeError(
                            f"{name} exited: {(self.logs / f'{name}.log').read_text()[-3000:]}"
                        )
                    try:
                        if (await client.get(url)).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError(f"{name} never became healthy")

    async def kill(self, name: str) -> None:
        """SIGKILL a service, as a crash would."""
        process = self.processes.pop(name)
        process.kill()
        await process.wait()

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM every service and wait for it (graceful shutdown); return the exit codes."""
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = await asyncio.wait_for(process.wait(), 40)
            except TimeoutError:
                process.kill()
                await process.wait()
                codes[name] = None  # did not stop in time
        self.processes.clear()
        return codes

    async def billing(self, *args: str, check: bool = True) -> str:
        """Run the ``billing`` CLI against this pipeline; return its output."""
        process = await asyncio.create_subprocess_exec(
            str(BILLING),
            *args,
            env=self.env() | {"COLUMNS": "200"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
        )
        out, _ = await process.communicate()
        text = out.decode()
        if check and process.returncode != 0:
            raise AssertionError(f"billing {' '.join(args)} exited {process.returncode}:\n{text}")
        return text


@pytest.fixture
async def pipeline(
    infra: Infra, namespace: str, smtp_sink: SmtpSink, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """Four real service processes for this test (stopped afterwards)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    pipe = Pipeline(infra, namespace, smtp_sink, logs)
    try:
        yield pipe
    finally:
        await pipe.stop()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
        await client.drop_database(namespace)
        await client.close()


class FlowBroker:
    """Where a flow test's services exchange their events: in memory, or on the real broker.

    A flow test is written once against this class and runs on both (the ``flow`` fixture), as
    FastStream's own tests do: the in-memory run proves the flow without waiting for Kafka, the
    broker run proves it where partitions, groups and commits are real.
    """

    kind = ""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._runtimes: list[Any] = []

    def publisher(self) -> Any:
        """The publisher the services are built with (``None``: their own Kafka one)."""
        return None

    async def serve(self, *runtimes: Any) -> None:
        """Start the services' consumers."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop what :meth:`serve` started."""
        for runtime in self._runtimes:
            for hook in runtime.on_shutdown:
                await hook()
            await runtime.mongo.close()

    async def publish(self, channel: Any, events: list[Any]) -> None:
        """Publish events on a channel, keyed as the channel says."""
        raise NotImplementedError

    async def publish_raw(self, channel: Any, key: bytes, value: bytes) -> None:
        """Publish bytes as they are (what no well-behaved producer would send)."""
        raise NotImplementedError

    async def read(self, topic: str, count: int) -> list[Any]:
        """The records on ``topic`` once there are ``count`` of them (all of them)."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Let the services' consumers take what was published, when the outcome is not on a
        topic (a webhook, an email): on the real broker they poll by themselves."""


class MemoryFlow(FlowBroker):
    """The services' consumers fed by :class:`~billing_runtime.memory.InMemoryBroker`."""

    kind = "memory"

    def __init__(self, namespace: str) -> None:
        from billing_runtime.memory import InMemoryBroker

        super().__init__(namespace)
        self.broker = InMemoryBroker()

    def publisher(self) -> Any:
        return self.broker

    async def serve(self, *runtimes: Any) -> None:
        for runtime in runtimes:
            self._runtimes.append(runtime)
            for hook in runtime.on_startup:
                await hook()

    async def publish(self, channel: Any, events: list[Any]) -> None:
        await self.broker.publish(channel.name(self.namespace), channel.keyed(events))

    async def publish_raw(self, channel: Any, key: bytes, value: bytes) -> None:
        await self.broker.publish_raw(channel.name(self.namespace), [(key, value, [])])

    async def settle(self) -> None:
        """Hand the consumers what was published (and what they publish in turn), now."""
        await self.broker.deliver(*self._runtimes)

    async def read(self, topic: str, count: int) -> list[Any]:
        await self.settle()
        records = self.broker.records(topic)
        assert len(records) >= count, f"{len(records)} of {count} records on {topic}"
        return records


class KafkaFlow(FlowBroker):
    """The services as ASGI apps on the real broker (consumer groups, commits, partitions)."""

    kind = "kafka"
    WITHIN_SECONDS = 60.0

    def __init__(self, namespace: str, bootstrap_servers: str) -> None:
        super().__init__(namespace)
        self.bootstrap_servers = bootstrap_servers
        self._apps: list[Any] = []
        self._publisher: Any = None

    async def serve(self, *runtimes: Any) -> None:
        from billing_runtime.service import asgi_app

        for runtime in runtimes:
            app = asgi_app(runtime)
            await app.start()
            self._apps.append(app)

    async def close(self) -> None:
        for app in self._apps:
            await app.stop()  # its shutdown hooks close the runtime
        if self._publisher is not None:
            await self._publisher.stop()

    async def _producer(self, topic: str) -> Any:
        from billing_runtime.kafka import EventPublisher, ensure_topics

        await ensure_topics(self.bootstrap_servers, [topic])
        if self._publisher is None:
            self._publisher = EventPublisher(self.bootstrap_servers, "flow-test")
            await self._publisher.start()
        return self._publisher

    async def publish(self, channel: Any, events: list[Any]) -> None:
        topic = channel.name(self.namespace)
        await (await self._producer(topic)).publish(topic, channel.keyed(events))

    async def publish_raw(self, channel: Any, key: bytes, value: bytes) -> None:
        topic = channel.name(self.namespace)
        await (await self._producer(topic)).publish_raw(topic, [(key, value, [])])

    async def read(self, topic: str, count: int) -> list[Any]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        records: list[Any] = []
        try:
            deadline = asyncio.get_running_loop().time() + self.WITHIN_SECONDS
            while len(records) < count:
                assert asyncio.get_running_loop().time() < deadline, (
                    f"{len(records)} of {count} records on {topic}"
                )
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records += batch
        finally:
            await consumer.stop()
        return records


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def flow(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[FlowBroker]:
    """A flow test's broker: the in-memory one, then the real one (the test runs on both)."""
    broker: FlowBroker
    if request.param == "kafka":
        infra: Infra = request.getfixturevalue("infra")
        broker = KafkaFlow(f"{namespace}.", infra.kafka_bootstrap_servers)
    else:
        broker = MemoryFlow(f"{namespace}.")
    try:
        yield broker
    finally:
        await broker.close()
