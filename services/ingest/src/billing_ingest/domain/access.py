"""Who may submit usage events over HTTP: per-source bearer tokens and their scopes. Pure rules.

Each upstream system (a metering service, an OpenStack region, a marketplace) gets its own
token, scoped to what it may report for: the CloudEvents ``source`` values it may send under,
the providers and the accounts (``data.sub_account_id``, the account that maps to a customer).
``"*"`` in a list means any. The scope is checked per event: an event outside it is rejected
with the reason, the others of the batch are accepted.

The ``source`` is part of an event's identity (its record id is a digest of ``source`` and
``id``, and the first content under an id stands), so a token that could send under any source
could claim another system's ids before it does: scope the sources too.

A token is recognised by comparing the SHA-256 digest of the one given with the digest of
every configured token, each in constant time, whatever matched before: neither the time an
answer takes nor a token's length says anything about the tokens.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from billing_schemas.events import UsageSubmitted

ANY = "*"
MIN_TOKEN_LENGTH = 16
SCOPE_KEYS = ("sources", "providers", "accounts")


class TokenConfigError(ValueError):
    """A configured token or scope is not usable (the message names which, never the token)."""


@dataclass(frozen=True)
class SourceScope:
    """What one upstream system's token may report: sources, providers, accounts (None: any)."""

    name: str
    sources: frozenset[str] | None
    providers: frozenset[str] | None
    accounts: frozenset[str] | None

    def refusal(self, event: UsageSubmitted) -> tuple[str, str] | None:
        """``(field, reason)`` when the event is outside this scope, else None."""
        for field, value, allowed in (
            ("source", event.source, self.sources),
            ("data.provider", event.data.provider, self.providers),
            ("data.sub_account_id", event.data.sub_account_id, self.accounts),
        ):
            if allowed is not None and value not in allowed:
                listed = ", ".join(repr(a) for a in sorted(allowed))
                reason = (
                    f"outside this token's scope ({self.name}): {field} {value!r} is not "
                    f"one of {listed}"
                )
                return field, reason
        return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _values(position: int, key: str, value: Any) -> frozenset[str] | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        msg = f'API token #{position}: {key!r} must be a non-empty list of strings (or ["*"])'
        raise TokenConfigError(msg)
    return None if ANY in value else frozenset(value)


def parse_scope(position: int, spec: Any) -> SourceScope:
    """``{"sources": [...], "providers": [...], "accounts": [...]}``, each list required."""
    if not isinstance(spec, Mapping):
        msg = (
            f"API token #{position}: the scope must be an object "
            '{"sources": [...], "providers": [...], "accounts": [...]}'
        )
        raise TokenConfigError(msg)
    unknown = set(spec) - {*SCOPE_KEYS, "name"}
    missing = [key for key in SCOPE_KEYS if key not in spec]
    if unknown or missing:
        msg = (
            f"API token #{position}: unknown keys {sorted(unknown)}, missing keys {missing} "
            f"(a scope has {', '.join(SCOPE_KEYS)} and an optional name)"
        )
        raise TokenConfigError(msg)
    name = spec.get("name", f"token #{position}")
    if not isinstance(name, str) or not name:
        msg = f"API token #{position}: 'name' must be a non-empty string"
        raise TokenConfigError(msg)
    return SourceScope(
        name=name,
        sources=_values(position, "sources", spec["sources"]),
        providers=_values(position, "providers", spec["providers"]),
        accounts=_values(position, "accounts", spec["accounts"]),
    )


def parse_tokens(tokens: Mapping[str, Any]) -> dict[bytes, SourceScope]:
    """The configured tokens (by digest) with their scopes; a short token or a bad scope is
    refused. Errors name the token by its position and its first four characters only."""
    parsed: dict[bytes, SourceScope] = {}
    for position, (token, spec) in enumerate(tokens.items(), start=1):
        if len(token) < MIN_TOKEN_LENGTH:
            msg = (
                f"API token #{position} ({token[:4]}...) is shorter than "
                f"{MIN_TOKEN_LENGTH} characters"
            )
            raise TokenConfigError(msg)
        parsed[_digest(token)] = parse_scope(position, spec)
    return parsed


def authenticate(tokens: Mapping[bytes, SourceScope], given: str | None) -> SourceScope | None:
    """The scope of the token given, or None. Every configured token's digest is compared,
    each in constant time, whatever matched before."""
    if not given:
        return None
    candidate = _digest(given)
    found: SourceScope | None = None
    for digest, scope in tokens.items():
        if hmac.compare_digest(candidate, digest):
            found = scope
    return found
