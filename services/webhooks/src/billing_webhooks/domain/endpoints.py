"""Webhook endpoints: who receives what, and when one that keeps failing is disabled. Pure.

An endpoint belongs to a customer (it receives that customer's invoice, payment and credit-note
events) or to the operators (``customer_id`` None: every customer's events, and bills). It may
subscribe to some event kinds only (none listed: all). Its URL must be HTTPS: a webhook carries
invoice data, and the signature proves who sent it, not who read it on the way (plain HTTP only
where a setting allows it, for a receiver on the same machine).
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from billing_webhooks.domain.messages import EventKind, WebhookMessage

SECRET_PREFIX = "whsec_"  # noqa: S105 - the form of a secret, not one
SECRET_BYTES = 32
MAX_URL_LENGTH = 2000


class EndpointError(ValueError):
    """An endpoint that cannot be registered as given (the message says why)."""


class EndpointNotFoundError(LookupError):
    """No such endpoint (or not one the caller may see)."""


@dataclass(frozen=True)
class Endpoint:
    """A URL that receives signed webhook deliveries."""

    endpoint_id: str
    url: str
    secret: str
    """``whsec_`` + base64 of 32 random bytes: the Standard Webhooks signing secret."""
    customer_id: str | None
    event_kinds: frozenset[EventKind]
    """Empty: every kind."""
    description: str
    created_at: datetime
    created_by: str
    enabled: bool = True
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    """Start of the current run of failed attempts (None after any success)."""

    def receives(self, message: WebhookMessage) -> bool:
        """Enabled, subscribed to the kind, and the message's customer is the endpoint's (or
        the endpoint is the operators', who receive everything)."""
        if not self.enabled:
            return False
        if self.event_kinds and message.kind not in self.event_kinds:
            return False
        return self.customer_id is None or self.customer_id == message.customer_id


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_endpoint_id() -> str:
    """A random endpoint id (``ep_`` and 20 hex digits)."""
    return f"ep_{secrets.token_hex(10)}"


def check_url(url: str, *, allow_http: bool = False) -> str:
    """An absolute HTTPS URL with a host (HTTP too when ``allow_http``); no credentials in it."""
    if len(url) > MAX_URL_LENGTH:
        msg = f"the URL is longer than {MAX_URL_LENGTH} characters"
        raise EndpointError(msg)
    parts = urlsplit(url)
    schemes = {"https", "http"} if allow_http else {"https"}
    if parts.scheme not in schemes:
        msg = f"the URL must be {' or '.join(sorted(schemes))}, not {parts.scheme or 'relative'!r}"
        raise EndpointError(msg)
    if not parts.hostname:
        msg = "the URL has no host"
        raise EndpointError(msg)
    if parts.username or parts.password:
        msg = "the URL must not carry credentials (the signature authenticates deliveries)"
        raise EndpointError(msg)
    if not allow_http and _internal_address(parts.hostname):
        msg = "the URL points into a private, loopback or link-local network"
        raise EndpointError(msg)
    if parts.fragment:
        msg = "the URL must not have a fragment"
        raise EndpointError(msg)
    return url


def _internal_address(host: str) -> bool:
    """A literal IP address that is not on the internet (a receiver must be reachable there;
    the deployment's network policy refuses those networks whatever a name resolves to)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")
    return not address.is_global


def parse_kinds(names: list[str]) -> frozenset[EventKind]:
    """Event kinds by name; an unknown one is refused, naming the known ones."""
    kinds: set[EventKind] = set()
    for name in names:
        try:
            kinds.add(EventKind(name.strip()))
        except ValueError:
            known = ", ".join(k.value for k in EventKind)
            msg = f"unknown event type {name!r} (known: {known})"
            raise EndpointError(msg) from None
    return frozenset(kinds)


def after_success(endpoint: Endpoint) -> Endpoint:
    """A delivered attempt ends the endpoint's run of failures."""
    return replace(endpoint, failing_since=None)


def after_failure(endpoint: Endpoint, now: datetime, disable_after: timedelta) -> Endpoint:
    """A failed attempt starts (or continues) the run of failures; an endpoint that has failed
    every attempt for ``disable_after`` or longer is disabled."""
    since = endpoint.failing_since or now
    failing = replace(endpoint, failing_since=since)
    if now - since >= disable_after and endpoint.enabled:
        started = since.isoformat(timespec="seconds")
        return disable(
            failing, now, f"every delivery failed for {_duration(now - since)} (since {started})"
        )
    return failing


def _duration(length: timedelta) -> str:
    """A duration as a person reads it: days when a day or more, else seconds."""
    if length >= timedelta(days=1):
        return f"{length / timedelta(days=1):.1f} days"
    return f"{length.total_seconds():.0f} seconds"


def disable(endpoint: Endpoint, now: datetime, reason: str) -> Endpoint:
    """Stop delivering to the endpoint (its queued deliveries are abandoned)."""
    return replace(endpoint, enabled=False, disabled_at=now, disabled_reason=reason)


def enable(endpoint: Endpoint) -> Endpoint:
    """Deliver again; the failure run starts afresh."""
    return replace(
        endpoint, enabled=True, disabled_at=None, disabled_reason=None, failing_since=None
    )
