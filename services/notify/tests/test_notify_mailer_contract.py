"""The :class:`~billing_notify.ports.Mailer` port's contract, run against the in-memory fake
(``adapters/memory.py``) and the SMTP mailer talking to a real SMTP server (aiosmtpd on a free
loopback port): what the server receives (envelope, subject, Message-ID, attachments, no
``Bcc``), what the report says, and which error a refusal, a deferral or a server that cannot be
reached raises, with ``before_data`` awaited exactly when the message data was about to go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Protocol

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from billing_notify.adapters.mailer import SmtpMailer
from billing_notify.adapters.memory import InMemoryMailer
from billing_notify.ports import (
    Mailer,
    PermanentMailError,
    SendReport,
    TransientMailError,
)

SENDER = "billing@cumulus.example"
AP, CFO, AUDIT = "ap@acme.example", "cfo@acme.example", "audit@acme.example"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
XML = "<?xml version='1.0'?><Invoice>März</Invoice>".encode()


@dataclass(frozen=True)
class Received:
    """One message as the server received it."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage


class MailWorld(Protocol):
    """A mailer and the mail server it talks to, which a test can make refuse things."""

    @property
    def mailer(self) -> Mailer:
        """The mailer under test."""
        ...

    def received(self) -> list[Received]:
        """What the server took, oldest first."""
        ...

    def refuse(self, address: str, reply: str) -> None:
        """Answer ``RCPT TO:<address>`` with ``reply``."""
        ...

    def answer_data(self, reply: str) -> None:
        """Answer the message data with ``reply`` (and keep nothing)."""
        ...

    async def go_down(self) -> None:
        """Stop accepting connections."""
        ...

    def without_smtputf8(self) -> None:
        """Stop offering SMTPUTF8 (internationalized addresses) to new connections."""
        ...


class FakeWorld:
    def __init__(self) -> None:
        self.fake = InMemoryMailer()

    @property
    def mailer(self) -> Mailer:
        return self.fake

    def received(self) -> list[Received]:
        return [Received(s.sender, s.recipients, s.message) for s in self.fake.sent]

    def refuse(self, address: str, reply: str) -> None:
        self.fake.refusals[address] = reply

    def answer_data(self, reply: str) -> None:
        self.fake.data_reply = reply

    async def go_down(self) -> None:
        self.fake.reachable = False

    def without_smtputf8(self) -> None:
        self.fake.smtputf8 = False


@dataclass
class ServerHandler:
    """aiosmtpd handler of the real server: refuses what it is told to, keeps the rest."""

    refusals: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    smtputf8: bool = True
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        del server, session, options
        if address in self.refusals:
            return self.refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del server, session
        if self.data_reply is not None:
            return self.data_reply
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), message))
        return "250 OK: queued"


class SmtpWorld:
    def __init__(self, server: asyncio.Server, handler: ServerHandler) -> None:
        self.server = server
        self.handler = handler
        port = int(server.sockets[0].getsockname()[1])
        self._mailer = SmtpMailer("127.0.0.1", port, timeout_seconds=5)

    @property
    def mailer(self) -> Mailer:
        return self._mailer

    def received(self) -> list[Received]:
        return list(self.handler.received)

    def refuse(self, address: str, reply: str) -> None:
        self.handler.refusals[address] = reply

    def answer_data(self, reply: str) -> None:
        self.handler.data_reply = reply

    async def go_down(self) -> None:
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 5)

    def without_smtputf8(self) -> None:
        self.handler.smtputf8 = False


async def _smtp_server(handler: ServerHandler) -> asyncio.Server:
    """A real SMTP server on a free loopback port, offering SMTPUTF8 while the handler says."""
    return await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="contract", enable_SMTPUTF8=handler.smtputf8),
        host="127.0.0.1",
        port=0,
    )


@pytest.fixture(params=["memory", "smtp"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[MailWorld]:
    if request.param == "memory":
        yield FakeWorld()
        return
    handler = ServerHandler()
    server = await _smtp_server(handler)
    try:
        yield SmtpWorld(server, handler)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


class Steps:
    """Counts the awaits of ``before_data``."""

    def __init__(self) -> None:
        self.before_data = 0

    async def __call__(self) -> None:
        self.before_data += 1


def _invoice_email(*, bcc: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Cumulus Billing <{SENDER}>"
    message["To"] = f"{AP}, {CFO}"
    if bcc is not None:
        message["Bcc"] = bcc
    message["Subject"] = "Rechnung CUM-2024-0001 für März"
    message["Message-ID"] = "<invoice-finalized.0123@billing.invalid>"
    message.set_content("Ihre Rechnung liegt bei.")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="CUM-2024-0001.pdf")
    message.add_attachment(XML, maintype="text", subtype="xml", filename="factur-x März.xml")
    return message


def _attachments(message: EmailMessage) -> list[tuple[str | None, bytes]]:
    found: list[tuple[str | None, bytes]] = []
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found.append((part.get_filename(), payload))
    return found


async def _send(world: MailWorld, recipients: list[str], steps: Steps) -> SendReport:
    return await world.mailer.send(
        _invoice_email(), sender=SENDER, recipients=recipients, before_data=steps
    )


async def test_an_accepted_email_reaches_the_server_as_it_was_written(world: MailWorld) -> None:
    steps = Steps()
    report = await world.mailer.send(
        _invoice_email(bcc=AUDIT), sender=SENDER, recipients=[AP, CFO, AUDIT], before_data=steps
    )

    assert report.accepted == (AP, CFO, AUDIT)
    assert report.refused == {}
    assert report.response.startswith("250")
    assert steps.before_data == 1
    [mail] = world.received()
    assert (mail.sender, mail.recipients) == (SENDER, (AP, CFO, AUDIT))
    assert mail.message["Subject"] == "Rechnung CUM-2024-0001 für März"
    assert mail.message["Message-ID"] == "<invoice-finalized.0123@billing.invalid>"
    assert [a.addr_spec for a in mail.message["To"].addresses] == [AP, CFO]
    assert mail.message["Bcc"] is None, "a blind copy is in the envelope only"
    body = mail.message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "Ihre Rechnung liegt bei."
    assert _attachments(mail.message) == [("CUM-2024-0001.pdf", PDF), ("factur-x März.xml", XML)]


async def test_a_refused_recipient_is_reported_and_the_others_served(world: MailWorld) -> None:
    world.refuse(CFO, "550 5.1.1 no such user")
    world.refuse(AUDIT, "452 4.2.2 mailbox full")
    steps = Steps()

    report = await _send(world, [AP, CFO, AUDIT], steps)

    assert report.accepted == (AP,)
    assert report.refused == {CFO: "550 5.1.1 no such user", AUDIT: "452 4.2.2 mailbox full"}
    assert report.refused_for_now() == {AUDIT: "452 4.2.2 mailbox full"}
    assert steps.before_data == 1
    assert [m.recipients for m in world.received()] == [(AP,)]


async def test_with_every_recipient_refused_no_data_is_sent(world: MailWorld) -> None:
    world.refuse(AP, "550 5.1.1 no such user")
    world.refuse(CFO, "451 4.3.0 try later")
    steps = Steps()

    report = await _send(world, [AP, CFO], steps)

    assert report.accepted == ()
    assert report.refused == {AP: "550 5.1.1 no such user", CFO: "451 4.3.0 try later"}
    assert steps.before_data == 0
    assert world.received() == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 queue full, try later", TransientMailError),
        ("421 4.7.0 closing, busy", TransientMailError),
        ("554 5.6.0 message refused: content", PermanentMailError),
        ("552 5.3.4 message too big", PermanentMailError),
    ],
)
async def test_a_refusal_of_the_data_is_transient_for_4xx_permanent_for_5xx(
    world: MailWorld, reply: str, error: type[Exception]
) -> None:
    world.answer_data(reply)
    steps = Steps()

    with pytest.raises(error) as raised:
        await _send(world, [AP], steps)

    assert type(raised.value) is error
    assert reply[:3] in str(raised.value)
    assert steps.before_data == 1, "the data was about to go: the log says sending"
    assert world.received() == []


async def test_a_server_that_cannot_be_reached_is_transient(world: MailWorld) -> None:
    await world.go_down()
    steps = Steps()

    with pytest.raises(TransientMailError):
        await _send(world, [AP], steps)

    assert steps.before_data == 0
    assert world.received() == []


async def test_an_internationalized_address_needs_smtputf8(world: MailWorld) -> None:
    jorg = "jörg@müller.example"
    steps = Steps()
    report = await _send(world, [jorg], steps)

    assert report.accepted == (jorg,)
    assert [m.recipients for m in world.received()] == [(jorg,)]

    world.without_smtputf8()
    with pytest.raises(PermanentMailError, match="SMTPUTF8"):
        await _send(world, [AP, jorg], steps)

    assert steps.before_data == 1, "nothing was about to go the second time"
    assert len(world.received()) == 1
