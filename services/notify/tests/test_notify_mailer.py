"""The SMTP mailer against a real SMTP server (aiosmtpd): accepted, refused, unreachable."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from billing_notify.adapters.mailer import PermanentMailError, SmtpMailer, TransientMailError
from billing_runtime.mail_sink import serve

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


class Replying:
    """An SMTP handler that answers DATA with a fixed reply (and keeps nothing)."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del server, session, envelope
        return self.reply


@asynccontextmanager
async def smtp_server(reply: str) -> AsyncIterator[int]:
    server = await serve(Replying(reply), "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_an_accepted_email_returns_the_servers_response(smtp_sink: SmtpSink) -> None:
    mailer = SmtpMailer(smtp_sink.host, smtp_sink.port)
    response = await mailer.send(_message(), sender="billing@example.com", recipients=RECIPIENTS)
    assert response == "250 Message accepted for delivery"
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
async def test_a_refusal_is_permanent_or_transient_by_its_code(
    reply: str, error: type[Exception]
) -> None:
    async with smtp_server(reply) as port:
        mailer = SmtpMailer("127.0.0.1", port)
        with pytest.raises(error, match=reply[:3]):
            await mailer.send(_message(), sender="billing@example.com", recipients=RECIPIENTS)


async def test_an_unreachable_server_is_transient() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    mailer = SmtpMailer("127.0.0.1", port, timeout_seconds=5)
    with pytest.raises(TransientMailError):
        await mailer.send(_message(), sender="billing@example.com", recipients=RECIPIENTS)
