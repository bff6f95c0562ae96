"""Sending email over SMTP (aiosmtplib), and telling retryable failures from final ones.

A failure is *permanent* (:class:`PermanentMailError`) when the server refused this message
with a 5xx reply: sending the same message again would be refused again, so the event is
dead-lettered. Everything else is *transient* (:class:`TransientMailError`) and retried: 4xx
replies, connection trouble and timeouts, and also refusals that are about our own set-up
rather than the message (greeting, authentication, envelope sender): dead-lettering every
invoice because a password expired would be worse than waiting until it is fixed.

A timeout after the message data was sent leaves it unknown whether the server took it; the
retry then sends it again with the same Message-ID, which mail clients show once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, Protocol

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)

from billing_notify.domain.errors import NotificationError

log = logging.getLogger("billing.notify.mailer")

SmtpSecurity = Literal["none", "starttls", "tls"]
"""``none``: plain SMTP (never upgraded); ``starttls``: STARTTLS required; ``tls``: implicit TLS."""


class TransientMailError(Exception):
    """The email was not accepted this time; the same email may be accepted later."""


class PermanentMailError(NotificationError):
    """The SMTP server refused this email for good (a 5xx reply about the message)."""


class Mailer(Protocol):
    """Port: hand an email to the mail system."""

    async def send(self, message: EmailMessage, *, sender: str, recipients: Sequence[str]) -> str:
        """Send ``message`` to ``recipients`` (the envelope); return the server's response.

        Raises :class:`TransientMailError` or :class:`PermanentMailError`.
        """
        ...


def classify_smtp_error(exc: Exception) -> TransientMailError | PermanentMailError:
    """Map an aiosmtplib (or socket) error to a transient or a permanent mail error."""
    if isinstance(exc, SMTPRecipientsRefused):
        # Every recipient was refused; permanent only if none of the refusals was temporary.
        refusals = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if exc.recipients and all(r.code >= 500 for r in exc.recipients):
            return PermanentMailError(f"all recipients refused: {refusals}")
        return TransientMailError(f"recipients refused: {refusals}")
    if isinstance(
        exc, (SMTPConnectError, SMTPHeloError, SMTPAuthenticationError, SMTPSenderRefused)
    ):
        return TransientMailError(f"SMTP set-up failed, not the message: {_describe(exc)}")
    if isinstance(exc, SMTPResponseException) and exc.code >= 500:
        return PermanentMailError(f"SMTP server refused the message: {exc.code} {exc.message}")
    if isinstance(exc, SMTPNotSupported):
        # e.g. an internationalized address to a server without SMTPUTF8: this message only.
        return PermanentMailError(f"SMTP server cannot take the message: {exc.message}")
    return TransientMailError(f"SMTP send failed: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    if isinstance(exc, SMTPResponseException):
        return f"{type(exc).__name__} {exc.code} {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class SmtpMailer:
    """One SMTP connection per email (about 150 emails/s to a local server: plenty here)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: SmtpSecurity = "none",
        username: str | None = None,
        password: str | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._timeout = timeout_seconds

    async def send(self, message: EmailMessage, *, sender: str, recipients: Sequence[str]) -> str:
        """See :class:`Mailer`; partly refused recipients are named in the returned response."""
        try:
            refused, response = await aiosmtplib.send(
                message,
                sender=sender,
                recipients=list(recipients),
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                timeout=self._timeout,
                use_tls=self._security == "tls",
                # aiosmtplib upgrades whenever the server offers STARTTLS unless told False:
                # "none" must mean none, "starttls" must fail if it is not offered.
                start_tls=self._security == "starttls",
            )
        except (SMTPException, OSError) as exc:
            # SMTP errors and socket errors (refused, reset, TLS) are all classified; anything
            # else is a bug and propagates as it is.
            raise classify_smtp_error(exc) from exc
        # aiosmtplib returns the text of the reply to DATA and raises unless its code is 250.
        text = f"250 {response}"
        if refused:
            # The server took the message for the other recipients: it is sent, and cannot be
            # taken back; the refusals stay on record in the delivery log.
            detail = ", ".join(f"{rcpt}: {reply}" for rcpt, reply in sorted(refused.items()))
            log.warning("%s: some recipients refused: %s", message["Message-ID"], detail)
            text += f" (refused: {detail})"
        return text


@dataclass(frozen=True)
class SentMail:
    """An email the fake mailer accepted."""

    message: EmailMessage
    sender: str
    recipients: tuple[str, ...]


@dataclass
class InMemoryMailer:
    """Fake of the port: keeps what it was given; raises the queued ``failures`` first."""

    sent: list[SentMail] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    response: str = "250 OK: queued"

    async def send(self, message: EmailMessage, *, sender: str, recipients: Sequence[str]) -> str:
        """See :class:`Mailer`."""
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(SentMail(message, sender, tuple(recipients)))
        return self.response
