"""The :class:`~billing_webhooks.ports.OperatorAlerts` port's contract, run against the fake
(``RecordedAlerts``, ``adapters/memory.py``) and the SMTP adapter talking to a real SMTP server
(aiosmtpd on a free loopback port): the operators get one email naming the disabled endpoint,
nobody is emailed without operators, and a mail system that is down or refuses the email never
makes the alert raise (the endpoint stays disabled either way)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Protocol

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from webhooks_test_support import T0, endpoint

from billing_devtools.mail_sink import serve
from billing_webhooks.adapters.mailer import SmtpOperatorAlerts
from billing_webhooks.adapters.memory import RecordedAlerts, SentAlert
from billing_webhooks.ports import OperatorAlerts

SENDER = "billing@cumulus.example"
OPS = ["ops@cumulus.example", "oncall@cumulus.example"]
DISABLED = replace(
    endpoint("ep_7", customer="acme", url="https://erp.acme.example/hooks"),
    enabled=False,
    disabled_at=T0,
    disabled_reason="failing for 5 days (last: HTTP 503)",
)


class AlertWorld(Protocol):
    """Operator alerts and the mail system they go through."""

    def alerts(self, operators: list[str]) -> OperatorAlerts:
        """Alerts to these operators."""
        ...

    def received(self) -> list[SentAlert]:
        """What reached the operators' mail server, oldest first."""
        ...

    def refuse_data(self, reply: str) -> None:
        """Make the mail server refuse every message with ``reply``."""
        ...

    async def go_down(self) -> None:
        """Stop the mail server."""
        ...


class FakeWorld:
    def __init__(self) -> None:
        self.made: list[RecordedAlerts] = []
        self._failing = False

    def alerts(self, operators: list[str]) -> OperatorAlerts:
        fake = RecordedAlerts(operators=operators, sender=SENDER, reachable=not self._failing)
        self.made.append(fake)
        return fake

    def received(self) -> list[SentAlert]:
        return [e for fake in self.made for e in fake.emails]

    def refuse_data(self, reply: str) -> None:
        del reply  # to the fake, a mail system that refuses is one that loses the email
        self._fail()

    async def go_down(self) -> None:
        self._fail()

    def _fail(self) -> None:
        self._failing = True
        for fake in self.made:
            fake.reachable = False


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps every message, or answers the data with ``reply``."""

    reply: str | None = None
    received: list[SentAlert] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        del server, session
        if self.reply is not None:
            return self.reply
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(message, EmailMessage)
        assert envelope.mail_from == SENDER
        self.received.append(SentAlert(tuple(envelope.rcpt_tos), message))
        return "250 OK"


class SmtpWorld:
    def __init__(self, server: asyncio.Server, mailbox: Mailbox) -> None:
        self.server = server
        self.mailbox = mailbox
        self.port = int(server.sockets[0].getsockname()[1])

    def alerts(self, operators: list[str]) -> OperatorAlerts:
        return SmtpOperatorAlerts(
            host="127.0.0.1",
            port=self.port,
            sender=SENDER,
            operators=operators,
            start_tls=False,
            timeout_seconds=5,
        )

    def received(self) -> list[SentAlert]:
        return list(self.mailbox.received)

    def refuse_data(self, reply: str) -> None:
        self.mailbox.reply = reply

    async def go_down(self) -> None:
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 5)


@pytest.fixture(params=["memory", "smtp"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[AlertWorld]:
    if request.param == "memory":
        yield FakeWorld()
        return
    mailbox = Mailbox()
    server = await serve(mailbox, "127.0.0.1", 0)
    try:
        yield SmtpWorld(server, mailbox)
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_the_operators_get_one_email_naming_the_endpoint(world: AlertWorld) -> None:
    await world.alerts(OPS).endpoint_disabled(DISABLED)

    [email] = world.received()
    assert email.recipients == tuple(OPS)
    message = email.message
    assert message["Subject"] == "Webhook endpoint disabled: https://erp.acme.example/hooks"
    assert message["From"] == SENDER
    assert [a.addr_spec for a in message["To"].addresses] == OPS
    assert message["Message-ID"]
    text = _text(message)
    assert "The webhook endpoint ep_7 of customer acme was disabled." in text
    assert "Reason: failing for 5 days (last: HTTP 503)" in text
    assert "billing webhooks enable ep_7" in text


async def test_without_operators_nobody_is_emailed(world: AlertWorld) -> None:
    await world.alerts([]).endpoint_disabled(DISABLED)

    assert world.received() == []


async def test_a_mail_server_that_is_down_does_not_make_the_alert_fail(
    world: AlertWorld,
) -> None:
    alerts = world.alerts(OPS)
    await world.go_down()

    await alerts.endpoint_disabled(DISABLED)  # logged, not raised

    assert world.received() == []


async def test_a_refused_alert_does_not_make_the_alert_fail(world: AlertWorld) -> None:
    world.refuse_data("554 5.7.1 relay denied")

    await world.alerts(OPS).endpoint_disabled(DISABLED)  # logged, not raised

    assert world.received() == []
