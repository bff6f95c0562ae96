"""Kafka entrypoints: the charge stream onto drafts (and its close markers); close commands."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bson.errors import BSONError

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
from billing_runtime.consumer import Message
from billing_runtime.kafka import Failed
from billing_runtime.observability import correlated
from billing_runtime.service import Runtime, declare_output
from billing_runtime.tracing import handling
from billing_schemas.channels import (
    CHARGE_RATED,
    CREDIT_NOTE_ISSUED,
    INVOICE_FINALIZED,
    INVOICE_OVERDUE,
    INVOICE_PAID,
    INVOICE_VOIDED,
    INVOICES_GENERATE,
    INVOICING,
    INVOICING_COMMANDS,
    PAYMENT_RECORDED,
)
from billing_schemas.events import ChargeRated, GenerateInvoices, PeriodClosing

log = logging.getLogger("billing.invoicing")


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
                if markers:  # later charges go to the next invoice: those markers freeze first
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
    declare_output(runtime, INVOICE_FINALIZED)
    # published by the invoicing commands (billing pay, billing invoices credit|void|overdue)
    # and the HTTP API (payments)
    for channel in (
        PAYMENT_RECORDED,
        CREDIT_NOTE_ISSUED,
        INVOICE_OVERDUE,
        INVOICE_PAID,
        INVOICE_VOIDED,
    ):
        declare_output(runtime, channel)
    declare_output(
        runtime,
        CHARGE_RATED,
        description=(
            "Period-close markers, put between the charges of the customer they close; and the "
            "one-off charges an operator adds (POST /v1/customers/{id}/charges, billing charges "
            "add), published as rated charges so that they reach the draft as usage does."
        ),
    )

    @runtime.consumer(
        CHARGE_RATED,
        group=INVOICING,
        max_records=settings.charge_batch_max_records,
        title="invoice-charges",
        description=(
            "Stores each rated charge once and recomputes its draft; at a period-close marker, "
            "finalizes, numbers and renders the customer's invoice."
        ),
    )
    async def invoice_charges(messages: list[Message[ChargeRated | PeriodClosing]]) -> list[Failed]:
        failed, closed = await apply_charge_stream(ports, [(m.record, m.event) for m in messages])
        finalized = sum(1 for o in closed if o.action == "finalized")
        runtime.metrics.outcomes.labels("invoicing", "invoice_finalized").inc(finalized)
        return failed

    @runtime.consumer(
        INVOICES_GENERATE,
        group=INVOICING_COMMANDS,
        max_records=1,
        title="generate-invoices",
        description="Closes a billing period: puts close markers into the charge stream.",
    )
    async def generate_invoices(messages: list[Message[GenerateInvoices]]) -> list[Failed]:
        for message in messages:
            command = message.event
            if command.data.dry_run:
                continue  # a dry run only informs the one who asked: the CLI prints it
            await request_close(
                ports,
                period=command.data.period,
                customer_id=command.data.customer_id,
                issue_date=command.occurred_at.date(),
                correlation_id=command.correlation_id,
            )
        return []
