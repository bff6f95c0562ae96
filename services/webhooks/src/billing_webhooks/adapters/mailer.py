"""Tells operators by email that an endpoint was disabled (SMTP, aiosmtplib)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from billing_webhooks.domain.endpoints import Endpoint

log = logging.getLogger("billing.webhooks.alerts")


def disabled_email(endpoint: Endpoint, sender: str, operators: list[str]) -> EmailMessage:
    """The operators' email about a disabled endpoint: which, whose, why, how to enable it."""
    mail = EmailMessage()
    whose = f"customer {endpoint.customer_id}" if endpoint.customer_id else "the operators"
    mail["Subject"] = f"Webhook endpoint disabled: {endpoint.url}"
    mail["From"] = sender
    mail["To"] = ", ".join(operators)
    mail["Message-ID"] = make_msgid(domain="billing.webhooks")
    mail.set_content(
        f"The webhook endpoint {endpoint.endpoint_id} of {whose} was disabled.\n\n"
        f"URL: {endpoint.url}\n"
        f"Reason: {endpoint.disabled_reason}\n"
        f"Disabled at: {endpoint.disabled_at.isoformat() if endpoint.disabled_at else '-'}\n\n"
        "Its queued deliveries were abandoned; new events are not queued for it.\n\n"
        "What it answered:\n"
        f"    billing webhooks deliveries --endpoint {endpoint.endpoint_id} --attempts\n\n"
        "Once the receiver works again:\n"
        f"    billing webhooks enable {endpoint.endpoint_id}\n"
    )
    return mail


class SmtpOperatorAlerts:
    """:class:`~billing_webhooks.ports.OperatorAlerts` by SMTP; without operators
    configured, a warning in the log only."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        operators: list[str],
        username: str | None = None,
        password: str | None = None,
        start_tls: bool | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._operators = operators
        self._username = username
        self._password = password
        self._start_tls = start_tls
        self._timeout = timeout_seconds

    async def endpoint_disabled(self, endpoint: Endpoint) -> None:
        """Email the operators (a failed email is logged, never raised: the endpoint stays
        disabled either way, and ``billing webhooks list`` shows it)."""
        if not self._operators:
            log.warning("endpoint %s disabled; no operators to tell", endpoint.endpoint_id)
            return
        mail = disabled_email(endpoint, self._sender, self._operators)
        try:
            await aiosmtplib.send(
                mail,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._start_tls,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError):
            log.exception("could not email the operators that %s was disabled", endpoint.url)
