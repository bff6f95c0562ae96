"""Kafka entrypoint: invoice finalized -> email -> notification sent. Decode, call, publish."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.kafka.annotations import KafkaMessage

from billing_notify.adapters.mailer import TransientMailError
from billing_notify.domain.errors import NotificationError
from billing_notify.service.notify_invoice import (
    MailPolicy,
    NotifyPorts,
    notification_sent,
    notify_invoice_finalized,
)
from billing_notify.settings import NotifySettings
from billing_runtime.kafka import Failed, decode_batch
from billing_runtime.observability import correlated
from billing_runtime.service import Runtime, declare_output
from billing_runtime.tracing import handling
from billing_schemas.events import InvoiceFinalized, NotificationSent
from billing_schemas.topics import Topic, dead_letter_name, topic_name


def register(
    runtime: Runtime, settings: NotifySettings, ports: NotifyPorts, policy: MailPolicy
) -> None:
    """Subscribe the notify consumer group to finalized invoices."""
    ns = settings.topic_namespace
    source = topic_name(Topic.INVOICE_FINALIZED, ns)
    target = topic_name(Topic.NOTIFICATION_SENT, ns)
    runtime.topics += [source, dead_letter_name(Topic.NOTIFICATION_SENT, ns)]
    runtime.consumes["email-finalized-invoices"] = InvoiceFinalized
    declare_output(runtime, target, NotificationSent, "Each email the SMTP server accepted.")
    declare_output(
        runtime,
        dead_letter_name(Topic.INVOICE_FINALIZED, ns),
        bytes,
        "Invoice events that could not be emailed: original bytes, error in x-error.",
    )

    @runtime.batch_subscriber(
        source,
        group=settings.consumer_group,
        title="email-finalized-invoices",
        description="Emails each finalized invoice and its PDF to the billing contacts, once.",
    )
    async def on_invoice_finalized(body: list[bytes], msg: KafkaMessage) -> None:
        del body  # the raw records carry the same bytes plus offsets for dead letters
        records: Any = msg.raw_message
        batch = decode_batch(records, InvoiceFinalized)
        failed = list(batch.failed)
        sent: list[tuple[str, NotificationSent]] = []
        outcomes = runtime.metrics.outcomes
        for record, event in batch.events:  # one by one: each email is its own SMTP exchange
            try:
                with handling("notify email", record), correlated(event.correlation_id):
                    notification = await notify_invoice_finalized(event, ports, policy)
            except NotificationError as exc:
                failed.append(Failed(record, f"{type(exc).__name__}: {exc}"))
                outcomes.labels("notify", "email_failed").inc()
                continue
            except TransientMailError:
                # NACK rewinds to the batch's first record at once: pause first, so that an
                # unreachable server is not hammered. Emails already sent are in the log and
                # will not be sent again.
                await asyncio.sleep(settings.retry_backoff_seconds)
                raise
            if notification is not None:
                sent.append((event.data.customer_id, notification_sent(notification, event)))
                outcomes.labels("notify", "email_sent").inc()
        await runtime.publisher.publish(target, sent)
        await runtime.dead_letters.send(failed)
        runtime.metrics.processed.labels("notify", source).inc(len(records))
