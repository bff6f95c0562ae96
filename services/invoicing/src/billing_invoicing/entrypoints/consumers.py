"""Kafka entrypoints: the charge stream onto drafts (and its close markers); close commands."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bson.errors import BSONError
from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter

from billing_invoicing.domain.invoice import invoice_id_for
from billing_invoicing.domain.model import StreamPosition
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges
from billing_invoicing.service.generate_invoices import (
    CatalogError,
    Closing,
    InvoicingPorts,
    Outcome,
    cancel_renderings,
    finish_close,
    request_close,
    start_closes,
)
from billing_invoicing.settings import InvoicingSettings
from billing_runtime.kafka import Failed, decode_batch
from billing_runtime.observability import correlated
from billing_runtime.service import Runtime, declare_output
from billing_runtime.tracing import consuming, handling
from billing_schemas.events import (
    ChargeRated,
    ChargeStreamEvent,
    CreditNoteIssued,
    GenerateInvoices,
    InvoiceFinalized,
    InvoiceOverdue,
    InvoicePaid,
    InvoiceVoided,
    PaymentRecorded,
    PeriodClosing,
)
from billing_schemas.topics import Topic, dead_letter_name, topic_name

log = logging.getLogger("billing.invoicing")
CHARGE_STREAM: TypeAdapter[ChargeRated | PeriodClosing] = TypeAdapter(ChargeStreamEvent)


RECORD_ERRORS: tuple[type[Exception], ...] = (ArithmeticError, ValueError, TypeError, BSONError)
"""Failures that are a record's own (an amount beyond storage, a bad value): the record is
dead-lettered with the reason and its neighbours go on. Anything else (the database or the
broker unreachable) fails the batch, which is delivered again."""


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _position(record: Any) -> StreamPosition | None:
    partition, offset = getattr(record, "partition", None), getattr(record, "offset", None)
    if isinstance(partition, int) and isinstance(offset, int):
        return StreamPosition(partition, offset)
    return None


async def apply_charge_stream(
    ports: InvoicingPorts, events: list[tuple[Any, ChargeRated | PeriodClosing]]
) -> tuple[list[Failed], list[Outcome]]:
    """Put runs of charges onto their drafts and freeze the invoices of each run of markers
    together where their markers stand, in stream order; then issue the batch's frozen
    invoices as their renderings come back."""
    failed: list[Failed] = []
    done: list[Outcome] = []
    closings: list[tuple[Any, Closing]] = []
    seen: set[str] = set()
    run: list[tuple[Any, PositionedCharge]] = []
    markers: list[tuple[Any, PeriodClosing]] = []

    try:
        for record, event in events:
            if isinstance(event, ChargeRated):
                # later charges go to the next invoice: the markers before them are frozen first
                closings += await _freeze(ports, markers, failed, done)
                markers.clear()
                run.append((record, PositionedCharge(event.data, _position(record))))
                continue
            failed += await _add_run(ports, run)
            run.clear()
            invoice_id = invoice_id_for(event.data.customer_id, event.data.period)
            if invoice_id not in seen:  # not the same marker twice in one batch
                seen.add(invoice_id)
                markers.append((record, event))
        closings += await _freeze(ports, markers, failed, done)
        failed += await _add_run(ports, run)
        done += await _issue(ports, closings, failed)
    finally:  # after a failure the batch comes again: stop the renderings still under way
        cancel_renderings(closing for _, closing in closings)
    for outcome in done:
        log.info("%s %s: %s", outcome.invoice_id, outcome.number, outcome.action)
    return failed, done


async def _freeze(
    ports: InvoicingPorts,
    markers: list[tuple[Any, PeriodClosing]],
    failed: list[Failed],
    done: list[Outcome],
) -> list[tuple[Any, Closing]]:
    """Freeze and number the invoices of a run of markers (their renderings start at once);
    a marker that cannot be closed for a reason of its own is dead-lettered with the reason."""
    if not markers:
        return []
    results = await start_closes(
        ports, [marker for _, marker in markers], isolate=(CatalogError, *RECORD_ERRORS)
    )
    closings = []
    for (record, marker), result in zip(markers, results, strict=True):
        if isinstance(result, Closing):
            closings.append((record, result))
        elif isinstance(result, Outcome):
            done.append(result)
        elif isinstance(result, CatalogError):
            failed.append(Failed(record, str(result)))
        else:
            invoice_id = invoice_id_for(marker.data.customer_id, marker.data.period)
            log.error("close marker %s dead-lettered: %s", invoice_id, _reason(result))
            failed.append(Failed(record, _reason(result)))
    return closings


async def _issue(
    ports: InvoicingPorts, closings: list[tuple[Any, Closing]], failed: list[Failed]
) -> list[Outcome]:
    """Issue the frozen invoices, each as soon as its rendering comes back (they are
    independent: their numbers are claimed), each in its close's span so that its announcement
    carries the trace. One that cannot be issued for a reason of its own (a total beyond what
    can be stored) has its marker dead-lettered with the reason and stays finalizing; the
    others go on. Any other failure stops them all (the batch comes again)."""

    async def issue(record: Any, closing: Closing) -> Outcome | None:
        with handling("invoicing close", record), correlated(closing.marker.correlation_id):
            try:
                return await finish_close(ports, closing)
            except RECORD_ERRORS as exc:
                invoice_id = closing.invoice.invoice_id
                log.warning("close marker %s dead-lettered: %s", invoice_id, exc)
                failed.append(Failed(record, _reason(exc)))
                return None

    tasks = [asyncio.ensure_future(issue(record, closing)) for record, closing in closings]
    try:
        issued = await asyncio.gather(*tasks)
    except BaseException:  # the first failure is raised as it is; the others stop
        for task in tasks:
            task.cancel()
        raise
    return [outcome for outcome in issued if outcome is not None]


async def _add_run(ports: InvoicingPorts, run: list[tuple[Any, PositionedCharge]]) -> list[Failed]:
    """Put a run of charges onto their drafts; if that fails for a reason of a record's own
    (:data:`RECORD_ERRORS`), put them one by one and return those that fail, with the reason.

    Safe to repeat: a charge is stored once under its id and counted by its stream position
    (``domain/model.py``), so what the failed attempt stored is counted once, by the retry.
    """
    if not run:
        return []
    try:
        await add_charges(ports.invoices, [charge for _, charge in run])
    except RECORD_ERRORS:
        log.warning("a run of %d charges failed: retrying them one by one", len(run))
    else:
        return []
    failed = []
    for record, charge in run:
        try:
            await add_charges(ports.invoices, [charge])
        except RECORD_ERRORS as exc:
            log.warning("charge %s dead-lettered: %s", charge.charge.charge_id, exc)
            failed.append(Failed(record, _reason(exc)))
    return failed


def register(runtime: Runtime, settings: InvoicingSettings, ports: InvoicingPorts) -> None:
    """Subscribe the invoicing consumer groups to the charge stream and to close commands."""
    ns = settings.topic_namespace
    for topic in (Topic.CHARGE_RATED, Topic.INVOICES_GENERATE, Topic.INVOICE_FINALIZED):
        runtime.topics += [topic_name(topic, ns), dead_letter_name(topic, ns)]
    runtime.consumes["invoice-charges"] = ChargeStreamEvent
    runtime.consumes["generate-invoices"] = GenerateInvoices
    declare_output(
        runtime,
        topic_name(Topic.INVOICE_FINALIZED, ns),
        InvoiceFinalized,
        "Each invoice finalized, numbered and rendered.",
    )
    # published by the invoicing commands (billing pay, billing invoices credit|void|overdue)
    # and the HTTP API (payments)
    for topic, event, what in (
        (Topic.PAYMENT_RECORDED, PaymentRecorded, "Each payment recorded against an invoice."),
        (Topic.CREDIT_NOTE_ISSUED, CreditNoteIssued, "Each credit note (a void is one too)."),
        (Topic.INVOICE_OVERDUE, InvoiceOverdue, "Each invoice overdue, once per day checked."),
        (Topic.INVOICE_PAID, InvoicePaid, "Each invoice that became paid, once."),
        (Topic.INVOICE_VOIDED, InvoiceVoided, "Each invoice voided, once."),
    ):
        declare_output(runtime, topic_name(topic, ns), event, what)
    declare_output(
        runtime,
        topic_name(Topic.CHARGE_RATED, ns),
        ChargeStreamEvent,
        "Period-close markers, put between the charges of the customer they close; and the "
        "one-off charges an operator adds (POST /v1/customers/{id}/charges, billing charges "
        "add), published as rated charges so that they reach the draft as usage does.",
    )
    for topic in (Topic.CHARGE_RATED, Topic.INVOICES_GENERATE):
        declare_output(
            runtime,
            dead_letter_name(topic, ns),
            bytes,
            "Messages invoicing could not process: original bytes, error in x-error.",
        )

    charge_topic = topic_name(Topic.CHARGE_RATED, ns)

    @runtime.batch_subscriber(
        charge_topic,
        group=settings.consumer_group,
        max_records=settings.charge_batch_max_records,
        title="invoice-charges",
        description=(
            "Stores each rated charge once and recomputes its draft; at a period-close marker, "
            "finalizes, numbers and renders the customer's invoice."
        ),
    )
    async def on_charge_stream(body: list[bytes], msg: KafkaMessage) -> None:
        del body
        records: Any = msg.raw_message
        batch = decode_batch(records, CHARGE_STREAM)
        with consuming("invoicing", charge_topic, records):
            failed, closed = await apply_charge_stream(ports, batch.events)
        await runtime.dead_letters.send([*batch.failed, *failed])
        metrics = runtime.metrics
        metrics.processed.labels("invoicing", charge_topic).inc(len(records))
        finalized = sum(1 for o in closed if o.action == "finalized")
        metrics.outcomes.labels("invoicing", "invoice_finalized").inc(finalized)

    @runtime.batch_subscriber(
        topic_name(Topic.INVOICES_GENERATE, ns),
        group=f"{settings.consumer_group}-commands",
        max_records=1,
        title="generate-invoices",
        description="Closes a billing period: puts close markers into the charge stream.",
    )
    async def on_generate_invoices(body: list[bytes], msg: KafkaMessage) -> None:
        del body
        records: Any = msg.raw_message
        batch = decode_batch(records, GenerateInvoices)
        for _, command in batch.events:
            if command.data.dry_run:
                continue  # a dry run only informs the one who asked: the CLI prints it
            await request_close(
                ports,
                period=command.data.period,
                customer_id=command.data.customer_id,
                issue_date=command.occurred_at.date(),
                correlation_id=command.correlation_id,
            )
        await runtime.dead_letters.send(batch.failed)
