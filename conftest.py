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
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
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
def namespace() -> str:
    """A unique prefix for this test's topics and database."""
    return f"t{uuid.uuid4().hex[:10]}"


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
    from billing_runtime.mail_sink import MaildirSink, serve

    directory = tmp_path / "mail"
    server = await serve(MaildirSink(directory), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield SmtpSink("127.0.0.1", port, directory)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
