"""Use case: reconcile a period, keep the verdict, publish it, and expose it as Prometheus
gauges."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from pymongo.asynchronous.database import AsyncDatabase

from billing_cli.reconcile import readers
from billing_cli.reconcile.domain import (
    Announcement,
    Charge,
    Reconciliation,
    Sources,
    Usage,
    period_reconciled,
    reconcile,
)
from billing_runtime.kafka import Publisher
from billing_schemas.channels import PERIOD_RECONCILED
from billing_schemas.topics import Topic, dead_letter_name, topic_name

RESULTS = "reconcile_results"
"""One document per period (and customer) reconciled: the latest verdict of each run's scope,
``billing reconcile``'s own record (notify keeps the whole periods' verdicts from the events)."""


async def read_sources(
    db: AsyncDatabase[dict[str, Any]],
    bootstrap_servers: str,
    namespace: str,
    period: str,
    customer_id: str | None = None,
) -> Sources:
    """Read every source of the period: each collection in one pass, each topic once (the
    collections and the topics at the same time)."""
    async with asyncio.TaskGroup() as group:
        stored = group.create_task(_read_stored(db, period, customer_id))
        topics = group.create_task(_read_topics(bootstrap_servers, namespace, period))
    read = topics.result()
    # field by field: asdict() would turn the records themselves into dicts
    return replace(stored.result(), **{f.name: getattr(read, f.name) for f in fields(read)})


@dataclass(frozen=True)
class _TopicReads:
    """What the topics say of the period (the fields of :class:`Sources` they fill)."""

    upstream_refused: list[tuple[str, str]]
    usage: list[Usage]
    usage_dead_letters: dict[str, str]
    charges: list[Charge]
    charge_dead_letters: dict[str, str]
    unreadable: dict[str, str | None]
    announced: list[Announcement]


async def _read_stored(
    db: AsyncDatabase[dict[str, Any]], period: str, customer_id: str | None
) -> Sources:
    """What ingest, rating and invoicing stored for the period, each collection in one pass."""
    async with asyncio.TaskGroup() as group:
        bills = group.create_task(readers.read_bills(db, period))
        restated = group.create_task(readers.read_restated(db))
        upstream = group.create_task(readers.read_upstream(db))
        rated = group.create_task(readers.read_rated(db, period))
        stored = group.create_task(readers.read_stored_charges(db, period))
        invoices = group.create_task(readers.read_invoices(db, period))
    prices, corrections = rated.result()
    return Sources(
        period=period,
        customer_id=customer_id,
        bills=bills.result(),
        restated_ids=restated.result(),
        upstream_ids=upstream.result(),
        rated_prices=prices,
        rating_corrections=corrections,
        stored=stored.result(),
        invoices=invoices.result(),
    )


async def _read_topics(bootstrap_servers: str, namespace: str, period: str) -> _TopicReads:
    """What the usage, charge, rejected-usage and invoice-finalized topics and the dead
    letters say of the period, each topic read once."""
    usage_topic = topic_name(Topic.USAGE_RECORDED, namespace)
    charge_topic = topic_name(Topic.CHARGE_RATED, namespace)
    usage_dlq = dead_letter_name(Topic.USAGE_RECORDED, namespace)
    charge_dlq = dead_letter_name(Topic.CHARGE_RATED, namespace)
    async with asyncio.TaskGroup() as group:
        refused = group.create_task(
            readers.read_upstream_refusals(
                bootstrap_servers, topic_name(Topic.USAGE_REJECTED, namespace), period
            )
        )
        usage = group.create_task(readers.read_usage(bootstrap_servers, usage_topic, period))
        usage_dead = group.create_task(
            readers.read_dead_letters(bootstrap_servers, usage_dlq, period, "record_id")
        )
        charges = group.create_task(readers.read_charges(bootstrap_servers, charge_topic, period))
        charge_dead = group.create_task(
            readers.read_dead_letters(bootstrap_servers, charge_dlq, period, "charge_id")
        )
        announced = group.create_task(
            readers.read_announced(
                bootstrap_servers, topic_name(Topic.INVOICE_FINALIZED, namespace), period
            )
        )
    usage_records, usage_unreadable = usage.result()
    charge_events, charge_unreadable = charges.result()
    dead_usage, dead_charges = usage_dead.result(), charge_dead.result()
    unreadable = {
        where: dead_usage.by_digest.get(sha) for where, sha in usage_unreadable.items()
    } | {where: dead_charges.by_digest.get(sha) for where, sha in charge_unreadable.items()}
    return _TopicReads(
        upstream_refused=refused.result(),
        usage=usage_records,
        usage_dead_letters=dead_usage.by_id,
        charges=charge_events,
        charge_dead_letters=dead_charges.by_id,
        unreadable=unreadable,
        announced=announced.result(),
    )


def result_id(period: str, customer_id: str | None) -> str:
    """The verdict's document id: the period, or ``<period>|<customer>``."""
    return period if customer_id is None else f"{period}|{customer_id}"


def checked_now() -> datetime:
    """The time of a run, to the millisecond (what a BSON date keeps), so that the kept verdict,
    the published one and notify's copy carry the same time."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def keep_verdict(
    db: AsyncDatabase[dict[str, Any]], result: Reconciliation, checked_at: datetime | None = None
) -> None:
    """Keep the latest verdict of the period (one single-document write)."""
    await db[RESULTS].replace_one(
        {"_id": result_id(result.period, result.customer_id)},
        {
            "period": result.period,
            "customer_id": result.customer_id,
            "reconciles": result.reconciles,
            "differences": len(result.differences),
            "unexplained": len(result.unexplained),
            "checked_at": checked_at or checked_now(),
        },
        upsert=True,
    )


async def publish_verdict(
    publisher: Publisher, namespace: str, result: Reconciliation, checked_at: datetime
) -> bool:
    """Publish a whole period's verdict on ``billing.period.reconciled.v1`` (notify keeps it
    for the operators' bill report) and wait for the broker; whether there was one to publish
    (a run narrowed to one customer has none: :func:`~.domain.period_reconciled`)."""
    event = period_reconciled(result, checked_at)
    if event is None:
        return False
    await publisher.publish(PERIOD_RECONCILED.name(namespace), PERIOD_RECONCILED.keyed([event]))
    return True


def write_gauges(result: Reconciliation, path: Path) -> None:
    """Prometheus gauges of the verdict in the text format, for node_exporter's textfile
    collector (or any scraper of a file): whether the period reconciles, and the number of
    differences, unexplained and explained."""
    registry = CollectorRegistry()
    labels = {"period": result.period, "customer": result.customer_id or ""}
    reconciles = Gauge(
        "billing_reconcile_period_reconciles",
        "1 when the period's last reconciliation found no unexplained difference, else 0.",
        list(labels),
        registry=registry,
    )
    differences = Gauge(
        "billing_reconcile_differences",
        "Differences the period's last reconciliation found.",
        [*labels, "explained"],
        registry=registry,
    )
    checked = Gauge(
        "billing_reconcile_last_run_timestamp_seconds",
        "When the period was last reconciled.",
        list(labels),
        registry=registry,
    )
    reconciles.labels(**labels).set(1 if result.reconciles else 0)
    unexplained = len(result.unexplained)
    differences.labels(**labels, explained="false").set(unexplained)
    differences.labels(**labels, explained="true").set(len(result.differences) - unexplained)
    checked.labels(**labels).set_to_current_time()
    write_to_textfile(str(path), registry)


async def reconcile_period(
    db: AsyncDatabase[dict[str, Any]],
    bootstrap_servers: str,
    namespace: str,
    period: str,
    customer_id: str | None = None,
    *,
    publisher: Publisher | None = None,
) -> Reconciliation:
    """Read the period's sources, compare them, keep the verdict, then publish it (with a
    publisher: the command always gives one)."""
    sources = await read_sources(db, bootstrap_servers, namespace, period, customer_id)
    result = await asyncio.to_thread(reconcile, sources)
    checked_at = checked_now()
    await keep_verdict(db, result, checked_at)
    if publisher is not None:
        await publish_verdict(publisher, namespace, result, checked_at)
    return result
