"""What notify's tests against the real broker share: settings for a test's namespace, the app
running in-process, publishing, waiting until consumed, and reading the mails the sink kept.

Imported as ``notify_test_support``: this folder is on pytest's ``pythonpath`` (root
pyproject.toml), as importlib mode puts no test folder on ``sys.path`` by itself.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from billing_devtools.testing import WITHIN_SECONDS, produce
from billing_notify.adapters.memory import InMemoryInvoicePdfs
from billing_notify.app import create_app
from billing_notify.ports import InvoicePdfs
from billing_notify.settings import NotifySettings
from billing_runtime.lag import wait_for_no_lag
from billing_schemas.events import Envelope
from billing_schemas.topics import Topic, topic_name

if TYPE_CHECKING:
    from conftest import Infra


def notify_settings(infra: Infra, namespace: str, smtp_port: int, **extra: Any) -> NotifySettings:
    """Settings on the test's topics and database, the local SMTP sink, quick retries."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": namespace,
        "topic_namespace": f"{namespace}.",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "batch_timeout_ms": 50,
        "retry_backoff_seconds": 0.2,
        "retry_poll_seconds": 0.1,
    }
    return NotifySettings.model_validate(values | extra)


@asynccontextmanager
async def running(settings: NotifySettings, pdfs: InvoicePdfs | None = None) -> AsyncIterator[None]:
    """The notify app started in-process: topics created, consumers subscribed; the PDFs it
    attaches come from ``pdfs`` (the fake of invoicing's documents; none by default)."""
    app = create_app(settings, pdfs or InMemoryInvoicePdfs())
    await app.start()
    try:
        yield
    finally:
        await app.stop()


async def publish(settings: NotifySettings, topic: Topic, key: str, *events: Envelope) -> None:
    """Publish ``events`` on the test's ``topic``, each with partition key ``key``."""
    await produce(
        settings.kafka_bootstrap_servers,
        topic_name(topic, settings.topic_namespace),
        [(key.encode(), e.model_dump_json().encode()) for e in events],
    )


async def consumed(settings: NotifySettings, topic: Topic, group_suffix: str = "") -> None:
    """Wait until notify's group (its name plus ``group_suffix``) has committed all of ``topic``."""
    ns = settings.topic_namespace
    await wait_for_no_lag(
        settings.kafka_bootstrap_servers,
        [(f"{ns}{settings.consumer_group}{group_suffix}", [topic_name(topic, ns)])],
        within_seconds=WITHIN_SECONDS,
        settle=0.5,
    )


def sink_mails(directory: Path) -> list[EmailMessage]:
    """The mails the sink kept in ``directory``, oldest file name first."""
    found: list[EmailMessage] = []
    for path in sorted(directory.glob("*.eml")):
        parsed: Any = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append(parsed)
    return found


def plain_text(mail: EmailMessage) -> str:
    """The text/plain part of ``mail``."""
    body: Any = mail.get_body(("plain",))
    return str(body.get_content())
