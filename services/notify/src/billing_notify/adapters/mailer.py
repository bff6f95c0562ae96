"""Sending email over SMTP (aiosmtplib), step by step, telling the caller how far it got.

The SMTP transaction is driven here rather than by ``aiosmtplib.send`` so that notify can
record, right before the message data goes out, that it is about to (``before_data``). That
marks the one point SMTP cannot settle: before it, a failure means the server has nothing
(it discards an unfinished transaction); after it, a lost reply leaves it unknown whether the
server took the message (:class:`UncertainMailError`).

Failures:

* :class:`PermanentMailError`: a 5xx reply about this message, or every recipient refused with
  5xx: sending the same again would be refused again;
* :class:`TransientMailError`: 4xx replies, connection refused or lost, timeouts before the data,
  and refusals about our own set-up rather than the message (greeting, STARTTLS,
  authentication, envelope sender): dead-lettering every email because a password expired
  would be worse than retrying until it is fixed;
* :class:`UncertainMailError`: the connection failed after the data was handed over.

A recipient refused while others are accepted is reported in :class:`SendReport` (the message
is delivered to the others and cannot be taken back).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)
from aiosmtplib.email import flatten_message

from billing_notify.ports import (
    BeforeData,
    PermanentMailError,
    SendReport,
    TransientMailError,
    UncertainMailError,
)

log = logging.getLogger("billing.notify.mailer")

SmtpSecurity = Literal["none", "starttls", "tls"]
"""``none``: plain SMTP (never upgraded); ``starttls``: STARTTLS required; ``tls``: implicit TLS."""


def classify_smtp_error(exc: Exception) -> TransientMailError | PermanentMailError:
    """Map an aiosmtplib (or socket) error raised *before the data* to transient or permanent."""
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

    def _client(self) -> SMTP:
        return SMTP(
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

    async def send(
        self,
        message: EmailMessage,
        *,
        sender: str,
        recipients: Sequence[str],
        before_data: BeforeData,
    ) -> SendReport:
        """See :class:`Mailer`."""
        client = self._client()
        progress = _Progress()
        try:
            # connect() greets, upgrades (STARTTLS / TLS) and logs in as configured
            await client.connect()
            try:
                return await _transaction(
                    client, message, sender, recipients, before_data, progress
                )
            finally:
                await _quit_quietly(client)
        except SMTPResponseException as exc:
            if progress.data_started and exc.code < 500:
                # a 4xx reply to the data: the server said no, so it keeps nothing
                msg = f"SMTP server deferred the message: {exc.code} {exc.message}"
                raise TransientMailError(msg) from exc
            raise classify_smtp_error(exc) from exc
        except (SMTPException, OSError) as exc:
            if progress.data_started:
                msg = f"no reply after the message data: {_describe(exc)}"
                raise UncertainMailError(msg) from exc
            raise classify_smtp_error(exc) from exc


@dataclass
class _Progress:
    data_started: bool = False


async def _transaction(  # noqa: PLR0917 - private, called once
    client: SMTP,
    message: EmailMessage,
    sender: str,
    recipients: Sequence[str],
    before_data: BeforeData,
    progress: _Progress,
) -> SendReport:
    await _greet(client)
    international = not all(a.isascii() for a in (sender, *recipients))
    if international and not client.supports_extension("smtputf8"):
        msg = "SMTPUTF8 is not supported by this server"
        raise SMTPNotSupported(msg)
    eight_bit = client.supports_extension("8bitmime")
    data = flatten_message(message, utf8=international, cte_type="8bit" if eight_bit else "7bit")
    options = ["SMTPUTF8"] if international else []
    options += ["BODY=8BITMIME"] if eight_bit else []
    encoding = "utf-8" if international else "ascii"
    await client.mail(sender, options=options, encoding=encoding)
    accepted: list[str] = []
    refused: dict[str, str] = {}
    for recipient in recipients:
        try:
            await client.rcpt(recipient, encoding=encoding)
        except SMTPRecipientRefused as exc:
            refused[recipient] = f"{exc.code} {exc.message}"
        else:
            accepted.append(recipient)
    if not accepted:
        await client.rset()
        return SendReport(accepted=(), refused=refused)
    await before_data()
    progress.data_started = True
    response = await client.data(data)
    if refused:
        log.warning("%s: some recipients refused: %s", message["Message-ID"], refused)
    return SendReport(
        accepted=tuple(accepted), refused=refused, response=f"{response.code} {response.message}"
    )


async def _greet(client: SMTP) -> None:
    """EHLO (HELO if the server knows no EHLO) unless ``connect()`` did: it greets only to
    upgrade or log in, and the server's extensions (SMTPUTF8, 8BITMIME) are unknown before."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except SMTPHeloError:
            await client.helo()


async def _quit_quietly(client: SMTP) -> None:
    if client.is_connected:
        try:
            await client.quit()
        except (SMTPException, OSError):
            client.close()
