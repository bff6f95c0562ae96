"""Kafka entrypoint: usage recorded -> rate -> charge rated. Decode, call, publish; no rules."""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka.annotations import KafkaMessage

from billing_rating.adapters.catalog import PricingCatalog
from billing_rating.adapters.rated_store import RatedStore
from billing_rating.adapters.tier_store import TierStore
from billing_rating.service.rate_batch import rate_batch
from billing_rating.settings import RatingSettings
from billing_runtime.kafka import Failed, decode_batch
from billing_runtime.observability import correlated
from billing_runtime.service import Runtime, declare_output
from billing_runtime.tracing import consuming
from billing_schemas.events import ChargeRated, UsageRecorded
from billing_schemas.topics import Topic, dead_letter_name, topic_name

log = logging.getLogger("billing.rating")


_to_json = ChargeRated.__pydantic_serializer__.to_json
_CHARGE_RATED: str = ChargeRated.model_fields["event_type"].default


async def _publish(runtime: Runtime, target: str, charges: list[tuple[str, ChargeRated]]) -> None:
    """Serialize each charge once, straight to bytes, and publish them per correlation id
    (``publish_serialized`` sends one set of headers per call; a batch usually has one)."""
    by_correlation: dict[str, list[tuple[str, bytes]]] = {}
    for key, event in charges:
        by_correlation.setdefault(event.correlation_id, []).append((key, _to_json(event)))
    for correlation_id, records in by_correlation.items():
        await runtime.publisher.publish_serialized(
            target,
            records,
            event_type=ChargeRated.model_fields["event_type"].default,
            correlation_id=correlation_id,
        )


def register(
    runtime: Runtime,
    settings: RatingSettings,
    catalog: PricingCatalog,
    tiers: TierStore,
    kept: RatedStore,
) -> None:
    """Subscribe the rating consumer group to recorded usage."""
    ns = settings.topic_namespace
    source = topic_name(Topic.USAGE_RECORDED, ns)
    target = topic_name(Topic.CHARGE_RATED, ns)
    runtime.topics += [source, dead_letter_name(Topic.CHARGE_RATED, ns)]
    runtime.consumes["rate-usage"] = UsageRecorded
    declare_output(runtime, target, ChargeRated, "Each usage record, rated: cost and price.")
    declare_output(
        runtime,
        dead_letter_name(Topic.USAGE_RECORDED, ns),
        bytes,
        "Usage that could not be rated (unknown account, no FX...): original bytes, x-error.",
    )

    @runtime.batch_subscriber(
        source,
        group=settings.consumer_group,
        title="rate-usage",
        description="Rates each recorded usage record for the customer owning its account.",
    )
    async def on_usage_recorded(body: list[bytes], msg: KafkaMessage) -> None:
        del body  # the raw records carry the same bytes plus offsets for dead letters
        records: Any = msg.raw_message
        batch = decode_batch(records, UsageRecorded)
        with (
            consuming("rating", source, records),
            correlated(event.correlation_id for _, event in batch.events),
        ):
            rated = await rate_batch(
                [event for _, event in batch.events],
                catalog,
                tiers,
                kept,
                lambda charges: _publish(runtime, target, charges),
            )
            failed = list(batch.failed)
            failed += [Failed(batch.events[i][0], reason) for i, reason in rated.failures]
            await runtime.dead_letters.send(failed)
            log.info("rated %d records, %d dead-lettered", len(rated.charges), len(failed))
        runtime.metrics.processed.labels("rating", source).inc(len(records))
        runtime.metrics.outcomes.labels("rating", "charge_rated").inc(len(rated.charges))
