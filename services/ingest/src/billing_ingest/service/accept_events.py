"""Use case: usage events from upstream systems -> usage recorded, with a verdict per event.

The same use case serves the Kafka topic and the HTTP batch endpoint. Every event gets its own
verdict; a bad event never rejects its neighbours:

* ``accepted``: valid and new; published as a usage record.
* ``duplicate``: the same ``source`` + ``id`` with the same content was accepted before; it is
  published again (same record id, so downstream stores it once), which also covers a crash
  between claiming the id and publishing.
* ``conflict``: the same ``source`` + ``id`` with *different* content was accepted before. It is
  not published (the first one stands) and is reported on the rejected-usage topic.
* ``rejected``: invalid (no ``id``, ``source`` or ``time``, a float amount, an amount beyond
  the bounds of money on the wire, an unknown currency, larger than :data:`MAX_EVENT_BYTES`...),
  outside the submitting token's scope, or failing for any other reason of its own; reported on
  the rejected-usage topic with the field at fault and the reason.

Everything that concerns one event (decoding, validation, the scope, normalization) is done
per event, and a failure there rejects that event only; what concerns the batch (the database
claim, publishing) fails the batch, to be retried.

Each event's id is claimed in the database (its content's fingerprint with it) before its
record is published: at-least-once delivery cannot make two records of one event, and a second
event reusing an id cannot replace the first silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from billing_ingest.adapters.event_errors import field_and_reason, raw_identity
from billing_ingest.domain.access import SourceScope
from billing_ingest.domain.submitted import submitted_to_record
from billing_ingest.ports import EventsPublisher, SubmittedEvents
from billing_schemas.events import (
    RejectedRow,
    UsageRecord,
    UsageRecorded,
    UsageRejected,
    UsageSubmitted,
)

SOURCE = "billing-ingest"

MAX_EVENT_BYTES = 64 * 1024
"""Largest upstream event, as JSON (a usage event is well under 2 KiB): a larger one is
rejected, so that no single event can outgrow a Kafka message downstream."""

Verdict = Literal["accepted", "duplicate", "conflict", "rejected"]


@dataclass(frozen=True)
class EventResult:
    """The verdict on one event of a batch, in the batch's order."""

    index: int
    verdict: Verdict
    event_id: str | None = None
    source: str | None = None
    record_id: str | None = None
    field: str | None = None
    reason: str | None = None


def fingerprint(event: UsageSubmitted) -> str:
    """The digest of an event's content, as validated (so key order and spacing don't count)."""
    return hashlib.sha256(event.model_dump_json().encode()).hexdigest()


def _invalid(index: int, raw: bytes, error: ValidationError | ValueError) -> EventResult:
    event_id, source = raw_identity(raw)
    if isinstance(error, ValidationError):
        where, reason = field_and_reason(error)
    else:
        where, reason = None, f"not a JSON event: {error}"
    return EventResult(index, "rejected", event_id, source, field=where, reason=reason)


def _judge(
    index: int, raw: bytes, scope: SourceScope | None
) -> tuple[UsageSubmitted, UsageRecord, str] | EventResult:
    """One event's own checks: its record and fingerprint, or its rejection."""
    if len(raw) > MAX_EVENT_BYTES:
        reason = f"event too large: {len(raw)} bytes, at most {MAX_EVENT_BYTES}"
        return EventResult(index, "rejected", reason=reason)
    event: UsageSubmitted | None = None
    try:
        event = UsageSubmitted.model_validate_json(raw)
        if scope is not None and (refused := scope.refusal(event)) is not None:
            field, reason = refused
            return EventResult(
                index, "rejected", event.id, event.source, field=field, reason=reason
            )
        return event, submitted_to_record(event), fingerprint(event)
    except ValidationError as exc:
        return _invalid(index, raw, exc)
    except Exception as exc:  # noqa: BLE001 - a failure of this event's own rejects it alone
        reason = f"could not be processed: {type(exc).__name__}: {str(exc)[:500]}"
        event_id, source = (event.id, event.source) if event is not None else (None, None)
        return EventResult(index, "rejected", event_id, source, reason=reason)


async def accept_usage_events(
    raw_events: list[bytes],
    *,
    store: SubmittedEvents,
    publisher: EventsPublisher,
    scope: SourceScope | None = None,
) -> list[EventResult]:
    """Judge, record and publish a batch of upstream events; see the module docstring.

    ``scope`` is the submitting token's (HTTP); None takes every source, provider and account
    (the Kafka topic, whose producers the broker authorizes; anonymous local development).
    """
    results, valid = _judge_each(raw_events, scope)
    claims, first_in_batch = _claims_of(valid)
    stored = await store.claim(claims)

    recorded: list[tuple[str, UsageRecorded]] = []
    for index, event, record, print_ in valid:
        record_id = record.record_id
        known = stored.get(record_id, claims[record_id])
        if known != print_:
            results[index] = EventResult(
                index,
                "conflict",
                event.id,
                event.source,
                record_id,
                reason=(
                    f"event {event.id!r} from {event.source!r} was already accepted with other "
                    "content; the first one stands (send a new id for new usage)"
                ),
            )
            continue
        is_new = record_id not in stored and first_in_batch[record_id] == index
        results[index] = EventResult(
            index, "accepted" if is_new else "duplicate", event.id, event.source, record_id
        )
        if first_in_batch[record_id] != index:
            continue  # the same event twice in one batch: published once
        recorded.append(
            (
                record.sub_account_id,
                UsageRecorded.create(
                    record,
                    source=SOURCE,
                    correlation_id=event.id,
                    event_id=f"usage-recorded:{record.record_id}",
                ),
            )
        )
    await publisher.usage(recorded)

    ordered = [results[i] for i in range(len(raw_events))]
    rejections = [r for r in ordered if r.verdict in {"conflict", "rejected"}]
    if rejections:
        await publisher.rejected([rejection_event(r, raw_events[r.index]) for r in rejections])
    return ordered


Judged = tuple[int, UsageSubmitted, UsageRecord, str]
"""A valid event: its index in the batch, the event, its record and its fingerprint."""


def _judge_each(
    raw_events: list[bytes], scope: SourceScope | None
) -> tuple[dict[int, EventResult], list[Judged]]:
    """Each event's own checks: the verdicts of those rejected, and the valid ones."""
    results: dict[int, EventResult] = {}
    valid: list[Judged] = []
    for index, raw in enumerate(raw_events):
        judged = _judge(index, raw, scope)
        if isinstance(judged, EventResult):
            results[index] = judged
            continue
        event, record, print_ = judged
        valid.append((index, event, record, print_))
    return results, valid


def _claims_of(valid: list[Judged]) -> tuple[dict[str, str], dict[str, int]]:
    """The fingerprint to claim per record id and the index of its first event in the batch
    (two contents for one id in the same batch: the first one claims it)."""
    claims: dict[str, str] = {}
    first_in_batch: dict[str, int] = {}
    for index, _, record, print_ in valid:
        record_id = record.record_id
        if record_id in claims and claims[record_id] != print_:
            continue
        claims.setdefault(record_id, print_)
        first_in_batch.setdefault(record_id, index)
    return claims, first_in_batch


def rejection_event(result: EventResult, raw: bytes) -> tuple[str, UsageRejected]:
    """The rejected-usage event telling why an upstream event was refused."""
    row = RejectedRow(
        column=result.field,
        reason=f"{result.verdict}: {result.reason}",
        raw={"event": raw.decode(errors="replace")[:4000], "source": result.source},
    )
    key = f"{result.source}:{result.event_id}"
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return key, UsageRejected.create(
        row,
        source=SOURCE,
        correlation_id=result.event_id or digest,
        event_id=f"usage-rejected:event:{digest}",
    )
