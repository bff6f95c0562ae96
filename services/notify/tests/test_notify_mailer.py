"""The SMTP mailer against a real SMTP server (aiosmtpd): accepted, refused, unreachable,
partly refused, cut off after the data, authenticated, STARTTLS required."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from billing_devtools.mail_sink import serve
from billing_notify.adapters.mailer import SmtpMailer
from billing_notify.ports import PermanentMailError, TransientMailError, UncertainMailError

if TYPE_CHECKING:
    from conftest import SmtpSink


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Billing <billing@example.com>"
    message["To"] = "ap@acme.example, cfo@acme.example"
    message["Subject"] = "Invoice ACME-1"
    message["Message-ID"] = "<invoice-finalized.0123@billing.invalid>"
    message.set_content("your invoice")
    return message


RECIPIENTS = ["ap@acme.example", "cfo@acme.example"]


class Steps:
    """Records when ``before_data`` was called."""

    def __init__(self) -> None:
        self.before_data = 0

    async def __call__(self) -> None:
        self.before_data += 1


class Replying:
    """An SMTP handler that answers DATA with a fixed reply (and keeps nothing); RCPT of the
    addresses in ``refuse`` is answered with their reply."""

    def __init__(self, reply: str, refuse: dict[str, str] | None = None) -> None:
        self.reply = reply
        self.refuse = refuse or {}
        self.received: list[list[str]] = []

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        del server, session, options
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del server, session
        self.received.append(list(envelope.rcpt_tos))
        return self.reply


@asynccontextmanager
async def smtp_server(handler: Any) -> AsyncIterator[int]:
    server = await serve(handler, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


@asynccontextmanager
async def custom_server(factory: Callable[[], SMTP]) -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_an_accepted_email_reports_the_servers_response(smtp_sink: SmtpSink) -> None:
    mailer = SmtpMailer(smtp_sink.host, smtp_sink.port)
    steps = Steps()
    report = await mailer.send(
        _message(), sender="billing@example.com", recipients=RECIPIENTS, before_data=steps
    )
    assert report.response == "250 Message accepted for delivery"
    assert (report.accepted, report.refused) == (tuple(RECIPIENTS), {})
    assert steps.before_data == 1
    [stored] = smtp_sink.messages()
    content = stored.read_bytes()
    assert b"Delivered-To: ap@acme.example\r\nDelivered-To: cfo@acme.example\r\n" in content
    assert b"Message-ID: <invoice-finalized.0123@billing.invalid>" in content


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.7.1 Message refused by policy", PermanentMailError),
        ("451 4.3.0 Local error, try again", TransientMailError),
    ],
)
async def test_a_refusal_of_the_data_is_permanent_or_transient_by_its_code(
    reply: str, error: type[Exception]
) -> None:
    async with smtp_server(Replying(reply)) as port:
        mailer = SmtpMailer("127.0.0.1", port)
        with pytest.raises(error, match=reply[:3]):
            await mailer.send(
                _message(),
                sender="billing@example.com",
                recipients=RECIPIENTS,
                before_data=Steps(),
            )


async def test_a_refused_recipient_is_reported_and_the_others_served() -> None:
    handler = Replying("250 OK", refuse={"cfo@acme.example": "452 4.2.2 Mailbox full"})
    async with smtp_server(handler) as port:
        report = await SmtpMailer("127.0.0.1", port).send(
            _message(), sender="billing@example.com", recipients=RECIPIENTS, before_data=Steps()
        )
    assert report.accepted == ("ap@acme.example",)
    assert report.refused == {"cfo@acme.example": "452 4.2.2 Mailbox full"}
    assert report.refused_for_now() == report.refused
    assert handler.received == [["ap@acme.example"]]


async def test_with_every_recipient_refused_no_data_is_sent() -> None:
    refusals = dict.fromkeys(RECIPIENTS, "550 5.1.1 No such user")
    handler = Replying("250 OK", refuse=refusals)
    steps = Steps()
    async with smtp_server(handler) as port:
        report = await SmtpMailer("127.0.0.1", port).send(
            _message(), sender="billing@example.com", recipients=RECIPIENTS, before_data=steps
        )
    assert (report.accepted, report.refused) == ((), refusals)
    assert steps.before_data == 0
    assert handler.received == []


class HangingUp:
    """Takes the data, then drops the connection instead of replying."""

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del session, envelope
        transport: Any = server.transport
        transport.abort()  # an asyncio.Transport: gone without a word
        return "250 OK"


async def test_a_connection_lost_after_the_data_is_uncertain() -> None:
    async with smtp_server(HangingUp()) as port:
        with pytest.raises(UncertainMailError, match="no reply after the message data"):
            await SmtpMailer("127.0.0.1", port, timeout_seconds=5).send(
                _message(),
                sender="billing@example.com",
                recipients=RECIPIENTS,
                before_data=Steps(),
            )


async def test_an_unreachable_server_is_transient() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    mailer = SmtpMailer("127.0.0.1", port, timeout_seconds=5)
    steps = Steps()
    with pytest.raises(TransientMailError):
        await mailer.send(
            _message(), sender="billing@example.com", recipients=RECIPIENTS, before_data=steps
        )
    assert steps.before_data == 0


async def test_credentials_are_used_and_wrong_ones_are_transient(tmp_path: Any) -> None:
    del tmp_path
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        del server, session, envelope, mechanism
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret", handled=False)

    def factory() -> SMTP:
        return SMTP(
            Replying("250 OK"),
            # loopback test (production sets smtp_security); auth_required would warn here
            auth_require_tls=False,
            authenticator=authenticator,
        )

    async with custom_server(factory) as port:
        good = SmtpMailer("127.0.0.1", port, username="billing", password="s3cret")
        report = await good.send(
            _message(), sender="billing@example.com", recipients=RECIPIENTS, before_data=Steps()
        )
        assert report.accepted == tuple(RECIPIENTS)
        bad = SmtpMailer("127.0.0.1", port, username="billing", password="wrong")
        with pytest.raises(TransientMailError, match="set-up"):
            await bad.send(
                _message(), sender="billing@example.com", recipients=RECIPIENTS, before_data=Steps()
            )
    # aiosmtplib tries each offered mechanism (PLAIN, LOGIN) before it gives up
    assert logins[0] == (b"billing", b"s3cret")
    assert set(logins[1:]) == {(b"billing", b"wrong")}


async def test_starttls_required_but_not_offered_sends_nothing_in_clear() -> None:
    handler = Replying("250 OK")
    async with smtp_server(handler) as port:  # this server offers no STARTTLS
        mailer = SmtpMailer("127.0.0.1", port, security="starttls", timeout_seconds=5)
        with pytest.raises(TransientMailError, match="STARTTLS"):
            await mailer.send(
                _message(), sender="billing@example.com", recipients=RECIPIENTS, before_data=Steps()
            )
    assert handler.received == []
