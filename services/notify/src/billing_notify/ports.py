"""Notify's ports: what its use cases need from the catalog, the stored PDFs, the delivery log,
the mail system and the reconciliation verdicts, each with a real adapter (``adapters/``) and an
in-memory fake (``adapters/memory.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from billing_catalog.models import Customer, InvoicingEntity
from billing_notify.domain.bill_report import Verdict
from billing_notify.domain.delivery import Delivery, DeliveryIntent
from billing_notify.domain.errors import NotificationError

BeforeData = Callable[[], Awaitable[object]]
"""Awaited by a mailer right before the message data goes out (see :class:`Mailer`)."""


class CustomerDirectory(Protocol):
    """Port: the catalog's customers and invoicing entities, by id."""

    async def customer(self, customer_id: str) -> Customer | None:
        """The customer, or None if the catalog has no such customer."""
        ...

    async def invoicing_entity(self, entity_id: str) -> InvoicingEntity | None:
        """The invoicing entity (the seller), or None if the catalog has no such entity."""
        ...


class UnknownDeliveryError(LookupError):
    """No delivery-log record has this Message-ID."""


class DeliveryLog(Protocol):
    """Port: record each step of an email before taking it, and the outcome after."""

    async def get(self, message_id: str) -> Delivery | None:
        """The record of this Message-ID, or None."""
        ...

    async def claim(self, intent: DeliveryIntent, *, restart: bool = False) -> Delivery:
        """Start an attempt: ``pending``, one more attempt, recipients as the intent says.

        Only from a claimable status (none yet, pending, retrying, failed); otherwise nothing
        changes and the record is returned as it is: the caller must look at its status.
        ``restart`` (a failed email sent again, e.g. its dead letter replayed) counts retries
        from zero again.
        """
        ...

    async def defer(
        self, intent: DeliveryIntent, next_attempt_at: datetime, reason: str
    ) -> Delivery:
        """Record the email as ``retrying`` at ``next_attempt_at`` without an attempt now."""
        ...

    async def mark_sending(self, message_id: str) -> Delivery:
        """The message data is about to go to the SMTP server: ``pending`` -> ``sending``."""
        ...

    async def mark_sent(
        self, message_id: str, smtp_response: str, delivered_to: Collection[str]
    ) -> Delivery:
        """The server accepted the email for ``delivered_to`` (added to those before)."""
        ...

    async def schedule_retry(
        self,
        message_id: str,
        smtp_response: str,
        next_attempt_at: datetime,
        delivered_to: Collection[str] = (),
    ) -> Delivery:
        """A transient failure: ``retrying`` at ``next_attempt_at``, one more retry counted."""
        ...

    async def mark_failed(
        self, message_id: str, smtp_response: str, delivered_to: Collection[str] = ()
    ) -> Delivery:
        """Refused for good, or given up: ``failed`` (never undoes ``sent`` or ``uncertain``)."""
        ...

    async def mark_uncertain(self, message_id: str, note: str) -> Delivery:
        """The data went out and no reply came back: ``uncertain``, never sent again."""
        ...

    async def resend_uncertain(self, message_id: str, now: datetime, note: str) -> Delivery:
        """An operator found that an ``uncertain`` email never arrived: ``retrying`` at ``now``
        (the re-driver sends it again). Only from ``uncertain``; otherwise unchanged."""
        ...

    async def claim_due_retry(self, now: datetime, lease: timedelta) -> Delivery | None:
        """Take one ``retrying`` record that is due, pushing its time ``lease`` ahead (so that
        another replica does not take it too); None when none is due.

        A record a re-driver took and then abandoned (it died, or lost the database, between
        claiming the attempt and recording its outcome) is still ``pending`` or ``sending``
        with that lease as its time: once the lease is over it is taken again like a due retry
        (a pending one is attempted again: nothing was sent; a sending one can only become
        uncertain). A consumer's first attempt has no time and is redelivered instead."""
        ...

    async def recent(self, *, invoice: str | None = None, limit: int = 100) -> list[Delivery]:
        """The latest records (all, or one invoice's, by its number or id), newest first."""
        ...


class InvoicePdfs(Protocol):
    """Port: the stored PDF of a finalized invoice or an issued credit note (invoicing owns
    them; notify reads them through invoicing's API)."""

    async def load(self, file_id: str) -> bytes:
        """The PDF's bytes; :class:`InvoicePdfMissingError` if no file has this id,
        :class:`InvoicePdfMismatchError` if the stored bytes no longer match their checksum,
        :class:`DocumentsUnavailableError` if they cannot be read now."""
        ...


class DocumentsUnavailableError(ConnectionError):
    """The documents could not be read now (invoicing did not answer, answered 5xx, or
    refused notify's token): transient, like a database that does not answer, so the
    event is tried again rather than dead-lettered (``service/failures.py``)."""


class TransientMailError(Exception):
    """The email was not accepted this time, and the server has nothing: retry later."""


class PermanentMailError(NotificationError):
    """The SMTP server refused this email for good (a 5xx reply about the message)."""


class UncertainMailError(Exception):
    """The message data was handed over and no reply came back: it may have been delivered."""


@dataclass(frozen=True)
class SendReport:
    """What the server did with one message: accepted for some recipients, refused for others.

    ``refused`` maps an address to the server's reply (``"452 4.2.2 mailbox full"``); a 4xx
    refusal may be tried again later, a 5xx one not.
    """

    accepted: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)
    response: str = ""

    def refused_for_now(self) -> dict[str, str]:
        """Refusals with a 4xx code: worth another try."""
        return {a: r for a, r in self.refused.items() if r.startswith("4")}


class Mailer(Protocol):
    """Port: hand an email to the mail system."""

    async def send(
        self,
        message: EmailMessage,
        *,
        sender: str,
        recipients: Sequence[str],
        before_data: BeforeData,
    ) -> SendReport:
        """Send ``message`` to ``recipients`` (the envelope).

        ``before_data`` is awaited once at least one recipient was accepted, right before the
        message data is sent; if no recipient is accepted it is not called and the report
        has no accepted address. Raises :class:`TransientMailError`,
        :class:`PermanentMailError` or, after ``before_data``, :class:`UncertainMailError`.
        """
        ...


class Reconciliations(Protocol):
    """Port: the last reconciliation verdict of periods, kept by notify from the verdicts
    ``billing reconcile`` publishes."""

    async def verdicts(self, periods: Sequence[str]) -> dict[str, Verdict]:
        """The last verdict of each period reconciled (whole period, every customer)."""
        ...

    async def keep(self, verdict: Verdict) -> bool:
        """Keep ``verdict`` as its period's, unless the one kept was checked at the same time
        or later (:func:`~billing_notify.domain.bill_report.supersedes`); whether it was kept."""
        ...
