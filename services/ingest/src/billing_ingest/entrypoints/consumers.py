"""Kafka entrypoint: upstream usage events -> usage recorded (bad ones dead-lettered)."""

from __future__ import annotations

from billing_ingest.bootstrap import AcceptPorts
from billing_ingest.service.accept_events import accept_usage_events
from billing_runtime.consumer import Message
from billing_runtime.kafka import Failed
from billing_runtime.service import Runtime, declare_output
from billing_schemas.channels import (
    BILL_PROCESSED,
    INGEST,
    USAGE_RECORDED,
    USAGE_REJECTED,
    USAGE_SUBMITTED,
)


def register(runtime: Runtime, ports: AcceptPorts) -> None:
    """Subscribe the ingest consumer group to upstream usage events."""
    for channel in (USAGE_RECORDED, USAGE_REJECTED, BILL_PROCESSED):
        declare_output(runtime, channel)

    # accept_usage_events validates each event itself, and publishes why it rejects one
    @runtime.raw_consumer(
        USAGE_SUBMITTED,
        group=INGEST,
        title="accept-usage-events",
        description="Validates upstream usage events; each valid one becomes a usage record.",
    )
    async def accept(messages: list[Message[bytes]]) -> list[Failed]:
        results = await accept_usage_events(
            [message.event for message in messages],
            store=ports.store,
            publisher=ports.publisher,
        )
        # events rejected for a reason of their own (invalid, out of bounds, too large, failing
        # to normalize) also go to the dead-letter topic, with their original bytes and the
        # reason; the rest of the batch goes on. Events on this topic are not token-scoped:
        # the broker's ACLs decide who may produce to it (docs/operations.md).
        for verdict in ("accepted", "duplicate", "conflict", "rejected"):
            count = sum(1 for r in results if r.verdict == verdict)
            if count:
                runtime.metrics.outcomes.labels("ingest", f"usage_event_{verdict}").inc(count)
        return [
            messages[r.index].failed(f"UsageSubmitted rejected: {r.reason}")
            for r in results
            if r.verdict == "rejected"
        ]
