"""Logs that carry the correlation id of what is being processed, and business counters.

Logs are JSON (one object a line: time, level, logger, message, service, correlation_id) when
``LOG_FORMAT=json`` (the Kubernetes default), readable text otherwise. Handlers wrap their work
in :func:`correlated`, so every log line written meanwhile names the bill or close it belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter
from pythonjsonlogger.json import JsonFormatter

current_correlation: ContextVar[str] = ContextVar("correlation_id", default="-")
_MAX_IDS = 5


@contextmanager
def correlated(correlation_ids: str | Iterable[str]) -> Iterator[None]:
    """Tag the log lines written inside with these correlation ids (a batch may carry several)."""
    if isinstance(correlation_ids, str):
        value = correlation_ids
    else:
        unique = list(dict.fromkeys(correlation_ids))
        value = ",".join(unique[:_MAX_IDS]) + (
            f",+{len(unique) - _MAX_IDS}" if len(unique) > _MAX_IDS else ""
        )
    token = current_correlation.set(value or "-")
    try:
        yield
    finally:
        current_correlation.reset(token)


class _Context(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = current_correlation.get()
        record.service = self.service
        return True


def configure_logging(level: str, fmt: Literal["text", "json"], service: str) -> None:
    """Log to stderr, as JSON or text, with the service and correlation id on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(_Context(service))
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(correlation_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass(frozen=True)
class Metrics:
    """Counters a service exposes on /metrics besides FastStream's own."""

    processed: Counter
    dead_lettered: Counter
    outcomes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        """Register the counters in a service's registry."""
        return cls(
            processed=Counter(
                "billing_messages_processed",
                "Messages consumed and committed, per topic.",
                ["service", "topic"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "billing_messages_dead_lettered",
                "Messages sent to a dead-letter topic, per original topic.",
                ["service", "topic"],
                registry=registry,
            ),
            outcomes=Counter(
                "billing_outcomes",
                "What the pipeline produced: usage_recorded, charge_rated, invoice_finalized, "
                "email_sent, email_failed...",
                ["service", "outcome"],
                registry=registry,
            ),
        )
