"""Kafka entrypoint: usage recorded -> rate -> charge rated. Decode, call, publish; no rules."""

from __future__ import annotations

import logging

from billing_rating.ports import PricingCatalog, RatedStore, TierStore
from billing_rating.service.rate_batch import rate_batch
from billing_rating.settings import RatingSettings
from billing_runtime.consumer import Message
from billing_runtime.kafka import Failed
from billing_runtime.service import Runtime, declare_output
from billing_schemas.channels import CHARGE_RATED, RATING, USAGE_RECORDED
from billing_schemas.events import ChargeRated, UsageRecorded

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
    target = CHARGE_RATED.name(settings.topic_namespace)
    declare_output(
        runtime,
        CHARGE_RATED,
        payload=ChargeRated,
        description="Each usage record, rated: cost and price.",
    )

    @runtime.consumer(
        USAGE_RECORDED,
        group=RATING,
        title="rate-usage",
        description="Rates each recorded usage record for the customer owning its account.",
    )
    async def rate_usage(messages: list[Message[UsageRecorded]]) -> list[Failed]:
        rated = await rate_batch(
            [message.event for message in messages],
            catalog,
            tiers,
            kept,
            lambda charges: _publish(runtime, target, charges),
        )
        log.info("rated %d records, %d not", len(rated.charges), len(rated.failures))
        runtime.metrics.outcomes.labels("rating", "charge_rated").inc(len(rated.charges))
        return [messages[i].failed(reason) for i, reason in rated.failures]
