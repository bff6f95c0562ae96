"""Kafka topic names: the only place they are spelled.

Topics read ``billing.<entity>.<fact>.v<N>``; commands read ``billing.<entity>.<verb>.v<N>``.
Every topic has a dead-letter topic, ``<topic>.dlq``, where a consumer puts a message it cannot
process: the original bytes, with the error in headers. A deployment (or a test) may prefix all
names with a namespace so that several pipelines share one broker without seeing each other.
"""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    """Every topic of the pipeline, with its partition key in the comment."""

    USAGE_SUBMITTED = "billing.usage.submitted.v1"  # upstream usage events; key: subject
    USAGE_RECORDED = "billing.usage.recorded.v1"  # key: sub-account id
    USAGE_REJECTED = "billing.usage.rejected.v1"  # key: bill id
    BILL_PROCESSED = "billing.bill.processed.v1"  # key: bill id
    CHARGE_RATED = "billing.charge.rated.v1"  # key: customer id; also period-close markers
    INVOICES_GENERATE = "billing.invoices.generate.v1"  # command; key: period
    INVOICE_FINALIZED = "billing.invoice.finalized.v1"  # key: customer id
    PAYMENT_RECORDED = "billing.payment.recorded.v1"  # key: customer id
    NOTIFICATION_SENT = "billing.notification.sent.v1"  # key: customer id
    CREDIT_NOTE_ISSUED = "billing.credit-note.issued.v1"  # key: customer id
    INVOICE_OVERDUE = "billing.invoice.overdue.v1"  # key: customer id
    INVOICE_PAID = "billing.invoice.paid.v1"  # key: customer id
    INVOICE_VOIDED = "billing.invoice.voided.v1"  # key: customer id
    AUDIT_RECORDED = "billing.audit.recorded.v1"  # key: customer id, else the subject
    PERIOD_RECONCILED = "billing.period.reconciled.v1"  # billing reconcile's verdict; key: period

    @property
    def dead_letter(self) -> str:
        """The dead-letter topic of this topic (without namespace)."""
        return f"{self.value}{DEAD_LETTER_SUFFIX}"


DEAD_LETTER_SUFFIX = ".dlq"

DEFAULT_PARTITIONS = 4
"""Partitions per topic in the local stack; the Kubernetes manifests set their own."""


def topic_name(topic: Topic, namespace: str = "") -> str:
    """The topic's name on the broker, with the deployment's namespace prefix if any."""
    return f"{namespace}{topic.value}"


def dead_letter_name(topic: Topic, namespace: str = "") -> str:
    """The dead-letter topic's name on the broker."""
    return f"{namespace}{topic.dead_letter}"


def all_topic_names(namespace: str = "") -> list[str]:
    """Every topic and its dead-letter topic, namespaced."""
    names: list[str] = []
    for topic in Topic:
        names += [topic_name(topic, namespace), dead_letter_name(topic, namespace)]
    return names
