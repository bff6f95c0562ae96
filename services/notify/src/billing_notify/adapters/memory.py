"""In-memory fakes of notify's ports (``billing_notify.ports``), for fast tests of the use
cases; the delivery log's contract test (``tests/test_notify_delivery_log.py``) and
``tests/test_notify_ports_contract.py`` hold them to what the real adapters do."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from copy import copy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from billing_catalog.models import Customer, InvoicingEntity
from billing_notify.adapters.delivery_log import (
    _NOT_SETTLED,
    _TAKEN_WHEN_DUE,
    Clock,
    _merged,
    utc_now,
)
from billing_notify.adapters.documents import _missing
from billing_notify.domain.bill_report import Verdict, supersedes
from billing_notify.domain.delivery import CLAIMABLE, Delivery, DeliveryIntent, DeliveryStatus
from billing_notify.ports import (
    BeforeData,
    DocumentsUnavailableError,
    PermanentMailError,
    SendReport,
    TransientMailError,
    UncertainMailError,
    UnknownDeliveryError,
)


class InMemoryCustomerDirectory:
    """Fake of the port for unit tests."""

    def __init__(self, *customers: Customer, entities: tuple[InvoicingEntity, ...] = ()) -> None:
        self.customers = {c.id: c for c in customers}
        self.entities = {e.id: e for e in entities}

    async def customer(self, customer_id: str) -> Customer | None:
        """See :class:`CustomerDirectory`."""
        return self.customers.get(customer_id)

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """See :class:`CustomerDirectory`."""
        return self.entities.get(entity_id)


class InMemoryDeliveryLog:
    """Fake of the port for unit tests: the same rules, in a dict."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.records: dict[str, Delivery] = {}
        self._clock = clock

    async def get(self, message_id: str) -> Delivery | None:
        """See :class:`DeliveryLog`."""
        return self.records.get(message_id)

    def _new(self, intent: DeliveryIntent, status: DeliveryStatus, attempts: int) -> Delivery:
        now = self._clock()
        return Delivery(
            message_id=intent.message_id,
            kind=intent.kind,
            invoice_id=intent.invoice_id,
            customer_id=intent.customer_id,
            recipients=intent.recipients,
            status=status,
            attempts=attempts,
            smtp_response=None,
            created_at=now,
            updated_at=now,
            fallback_recipient=intent.fallback_recipient,
            source_topic=intent.source_topic,
            source_event=intent.source_event,
            source_key=intent.source_key,
            invoice_number=intent.invoice_number,
        )

    @staticmethod
    def _intent_fields(record: Delivery, intent: DeliveryIntent) -> Delivery:
        record = replace(
            record, recipients=intent.recipients, fallback_recipient=intent.fallback_recipient
        )
        if intent.source_event is not None:
            record = replace(
                record,
                source_topic=intent.source_topic,
                source_event=intent.source_event,
                source_key=intent.source_key,
            )
        return record

    async def claim(self, intent: DeliveryIntent, *, restart: bool = False) -> Delivery:
        """See :class:`DeliveryLog`."""
        existing = self.records.get(intent.message_id)
        if existing is None:
            return self._store(self._new(intent, DeliveryStatus.PENDING, attempts=1))
        if existing.status not in CLAIMABLE:
            return existing
        record = self._intent_fields(existing, intent)
        return self._store(
            replace(
                record,
                status=DeliveryStatus.PENDING,
                attempts=existing.attempts + 1,
                retries=0 if restart else existing.retries,
                updated_at=self._clock(),
            )
        )

    async def defer(
        self, intent: DeliveryIntent, next_attempt_at: datetime, reason: str
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        existing = self.records.get(intent.message_id)
        if existing is None:
            record = self._new(intent, DeliveryStatus.RETRYING, attempts=0)
        elif existing.status not in CLAIMABLE:
            return existing
        else:
            record = self._intent_fields(existing, intent)
        return self._store(
            replace(
                record,
                status=DeliveryStatus.RETRYING,
                next_attempt_at=next_attempt_at,
                smtp_response=reason,
                retries=(0 if existing is None else existing.retries) + 1,
                updated_at=self._clock(),
            )
        )

    async def mark_sending(self, message_id: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return self._move(message_id, (DeliveryStatus.PENDING,), status=DeliveryStatus.SENDING)

    async def mark_sent(
        self, message_id: str, smtp_response: str, delivered_to: Collection[str]
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        return self._move(
            message_id,
            _NOT_SETTLED,
            delivered_to,
            status=DeliveryStatus.SENT,
            smtp_response=smtp_response,
            next_attempt_at=None,
        )

    async def schedule_retry(
        self,
        message_id: str,
        smtp_response: str,
        next_attempt_at: datetime,
        delivered_to: Collection[str] = (),
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        existing = self._existing(message_id)
        return self._move(
            message_id,
            _NOT_SETTLED,
            delivered_to,
            status=DeliveryStatus.RETRYING,
            smtp_response=smtp_response,
            next_attempt_at=next_attempt_at,
            retries=existing.retries + 1,
        )

    async def mark_failed(
        self, message_id: str, smtp_response: str, delivered_to: Collection[str] = ()
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        return self._move(
            message_id,
            _NOT_SETTLED,
            delivered_to,
            status=DeliveryStatus.FAILED,
            smtp_response=smtp_response,
            next_attempt_at=None,
        )

    async def mark_uncertain(self, message_id: str, note: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return self._move(
            message_id,
            (DeliveryStatus.SENDING,),
            status=DeliveryStatus.UNCERTAIN,
            smtp_response=note,
        )

    async def resend_uncertain(self, message_id: str, now: datetime, note: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return self._move(
            message_id,
            (DeliveryStatus.UNCERTAIN,),
            status=DeliveryStatus.RETRYING,
            next_attempt_at=now,
            smtp_response=note,
        )

    async def claim_due_retry(self, now: datetime, lease: timedelta) -> Delivery | None:
        """See :class:`DeliveryLog`."""
        due = [
            r
            for r in self.records.values()
            if r.status in _TAKEN_WHEN_DUE
            and r.next_attempt_at is not None
            and r.next_attempt_at <= now
        ]
        if not due:
            return None
        first = min(due, key=lambda r: r.next_attempt_at or now)
        return self._store(replace(first, next_attempt_at=now + lease, updated_at=self._clock()))

    async def recent(self, *, invoice: str | None = None, limit: int = 100) -> list[Delivery]:
        """See :class:`DeliveryLog`."""
        chosen = [
            r
            for r in self.records.values()
            if invoice is None or invoice in (r.invoice_id, r.invoice_number)
        ]
        return sorted(chosen, key=lambda r: r.updated_at, reverse=True)[:limit]

    def _existing(self, message_id: str) -> Delivery:
        existing = self.records.get(message_id)
        if existing is None:
            raise UnknownDeliveryError(message_id)
        return existing

    def _move(
        self,
        message_id: str,
        allowed_from: Collection[DeliveryStatus],
        delivered_to: Collection[str] = (),
        **changes: Any,
    ) -> Delivery:
        existing = self._existing(message_id)
        if existing.status not in allowed_from:
            return existing
        merged = tuple(_merged(existing.delivered_to, delivered_to))
        return self._store(
            replace(existing, delivered_to=merged, updated_at=self._clock(), **changes)
        )

    def _store(self, record: Delivery) -> Delivery:
        self.records[record.message_id] = record
        return record


class InMemoryInvoicePdfs:
    """Fake of the port for unit tests; while ``unavailable`` is set, every load fails as
    invoicing not answering does (:class:`DocumentsUnavailableError`)."""

    def __init__(self, files: dict[str, bytes] | None = None, *, unavailable: bool = False) -> None:
        self.files = dict(files or {})
        self.unavailable = unavailable

    async def load(self, file_id: str) -> bytes:
        """See :class:`InvoicePdfs`."""
        if self.unavailable:
            msg = f"document {file_id!r} not read: invoicing is unavailable (fake)"
            raise DocumentsUnavailableError(msg)
        try:
            return self.files[file_id]
        except KeyError:
            raise _missing(file_id) from None


@dataclass(frozen=True)
class SentMail:
    """An email the fake mailer accepted, as an SMTP server would receive it."""

    message: EmailMessage
    sender: str
    recipients: tuple[str, ...]


def _as_received(message: EmailMessage) -> EmailMessage:
    """``message`` without the headers the SMTP mailer never sends (``Bcc``, ``Resent-Bcc``:
    aiosmtplib removes them; those recipients are in the envelope only)."""
    received = copy(message)
    del received["Bcc"]
    del received["Resent-Bcc"]
    return received


@dataclass
class InMemoryMailer:
    """Fake of the port: keeps what it was given, answering as the SMTP mailer would
    (``tests/test_notify_mailer_contract.py`` holds the two to the same assertions).

    The fake server: ``refusals`` maps an address to the reply refusing it (``"550 no such
    user"``); ``data_reply`` is its reply to the message data (a 4xx one raises
    :class:`TransientMailError`, a 5xx one :class:`PermanentMailError`, both after
    ``before_data``); ``reachable=False`` refuses the connection (:class:`TransientMailError`);
    ``smtputf8=False`` is a server without SMTPUTF8, which cannot take a message whose envelope
    has a non-ASCII address (:class:`PermanentMailError`, before anything is sent).
    ``failures`` are raised first, one per call, before the data (nothing delivered) unless
    they are :class:`UncertainMailError`, which is raised after ``before_data``.
    """

    sent: list[SentMail] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)
    response: str = "250 OK: queued"
    data_reply: str | None = None
    reachable: bool = True
    smtputf8: bool = True

    async def send(
        self,
        message: EmailMessage,
        *,
        sender: str,
        recipients: Sequence[str],
        before_data: BeforeData,
    ) -> SendReport:
        """See :class:`Mailer`."""
        if not self.reachable:
            msg = "SMTP send failed: SMTPConnectError: connection refused"
            raise TransientMailError(msg)
        if self.failures and not isinstance(self.failures[0], UncertainMailError):
            raise self.failures.pop(0)
        if not self.smtputf8 and not all(a.isascii() for a in (sender, *recipients)):
            msg = "SMTP server cannot take the message: SMTPUTF8 is not supported by this server"
            raise PermanentMailError(msg)
        refused = {r: self.refusals[r] for r in recipients if r in self.refusals}
        accepted = tuple(r for r in recipients if r not in refused)
        if not accepted:
            return SendReport(accepted=(), refused=refused)
        await before_data()
        if self.failures:
            raise self.failures.pop(0)
        if self.data_reply is not None and not self.data_reply.startswith("2"):
            if self.data_reply < "5":
                msg = f"SMTP server deferred the message: {self.data_reply}"
                raise TransientMailError(msg)
            msg = f"SMTP server refused the message: {self.data_reply}"
            raise PermanentMailError(msg)
        self.sent.append(SentMail(_as_received(message), sender, accepted))
        return SendReport(
            accepted=accepted, refused=refused, response=self.data_reply or self.response
        )


class InMemoryReconciliations:
    """Fake of the port for unit tests (and the default: no period reconciled yet)."""

    def __init__(self, verdicts: dict[str, Verdict] | None = None) -> None:
        self.known = dict(verdicts or {})

    async def verdicts(self, periods: Sequence[str]) -> dict[str, Verdict]:
        """See :class:`Reconciliations`."""
        return {p: self.known[p] for p in periods if p in self.known}

    async def keep(self, verdict: Verdict) -> bool:
        """See :class:`Reconciliations`."""
        if not supersedes(verdict, self.known.get(verdict.period)):
            return False
        self.known[verdict.period] = verdict
        return True
