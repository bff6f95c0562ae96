"""Who may use a service's HTTP API: bearer tokens and their scopes. Pure rules, no I/O.

Shared by the invoicing and webhooks APIs, so that one token means the same everywhere.
A token maps to a scope: ``operator`` (everything: every customer, payments, period close,
margin report, catalog, webhooks, audit) or ``customer:<id>`` (that customer's invoices, dues,
contacts and webhook endpoints only).
A token is recognised by comparing it with every configured token in constant time, so the
time an answer takes says nothing about how much of a token was right.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

OPERATOR = "operator"
CUSTOMER_PREFIX = "customer:"


class TokenConfigError(ValueError):
    """A configured token or scope is not usable (the message names which, never the token)."""


@dataclass(frozen=True)
class Scope:
    """What a token may see: everything (``customer_id`` None) or one customer; ``name`` says
    who holds it in the audit trail (``token:<fingerprint>`` for a configured token)."""

    customer_id: str | None
    name: str = field(default="", compare=False)

    @property
    def actor(self) -> str:
        """Who acts with this scope, as the audit trail records it."""
        return self.name or f"token:{self}"

    @property
    def is_operator(self) -> bool:
        """Operators see every customer and may change money and the catalog."""
        return self.customer_id is None

    def may_see(self, customer_id: str) -> bool:
        """Operators see every customer; a customer token only its own."""
        return self.customer_id is None or self.customer_id == customer_id

    def __str__(self) -> str:
        return OPERATOR if self.customer_id is None else f"{CUSTOMER_PREFIX}{self.customer_id}"


class ForbiddenError(PermissionError):
    """The token's scope does not cover what was asked (HTTP 403)."""


class OutOfScopeError(LookupError):
    """What was asked is outside the token's scope: answered as if it did not exist (HTTP 404),
    so a customer token learns nothing about other customers, not even that they exist."""


def require_customer(scope: Scope, customer_id: str) -> None:
    """Refuse a customer token another customer's resources, as if that customer did not exist
    (the message is the one an unknown customer gets, and names no one else)."""
    if not scope.may_see(customer_id):
        msg = f"no customer {customer_id!r}"
        raise OutOfScopeError(msg)


def require_operator(scope: Scope, what: str) -> None:
    """Refuse a customer token what only operators may do."""
    if not scope.is_operator:
        msg = f"{what} needs an operator token"
        raise ForbiddenError(msg)


def parse_scope(text: str) -> Scope:
    """``operator`` or ``customer:<id>``; anything else is refused."""
    if text == OPERATOR:
        return Scope(None)
    if text.startswith(CUSTOMER_PREFIX) and text[len(CUSTOMER_PREFIX) :].strip():
        return Scope(text[len(CUSTOMER_PREFIX) :].strip())
    msg = f"scope {text!r} is neither 'operator' nor 'customer:<id>'"
    raise TokenConfigError(msg)


MIN_TOKEN_LENGTH = 16


def token_name(token: str) -> str:
    """A configured token's name in logs and the audit trail: ``token:`` and the first 12 hex
    digits of its SHA-256 (says which token without saying it; ``echo -n TOKEN | sha256sum``)."""
    return f"token:{hashlib.sha256(token.encode()).hexdigest()[:12]}"


def parse_tokens(tokens: Mapping[str, str]) -> dict[bytes, Scope]:
    """The configured tokens with their scopes; a short token or a bad scope is refused.

    Errors name the token by its position and its first four characters only.
    """
    parsed: dict[bytes, Scope] = {}
    for position, (token, scope) in enumerate(tokens.items(), start=1):
        if len(token) < MIN_TOKEN_LENGTH:
            msg = (
                f"API token #{position} ({token[:4]}...) is shorter than "
                f"{MIN_TOKEN_LENGTH} characters"
            )
            raise TokenConfigError(msg)
        try:
            parsed[token.encode()] = replace(parse_scope(scope), name=token_name(token))
        except TokenConfigError as exc:
            msg = f"API token #{position} ({token[:4]}...): {exc}"
            raise TokenConfigError(msg) from None
    return parsed


def authenticate(tokens: Mapping[bytes, Scope], given: str | None) -> Scope | None:
    """The scope of the token given, or None. Every configured token is compared, each in
    constant time, whatever matched before, so timing tells nothing about the tokens."""
    if not given:
        return None
    candidate = given.encode()
    found: Scope | None = None
    for token, scope in tokens.items():
        if hmac.compare_digest(candidate, token):
            found = scope
    return found


def read_tokens_file(path: Path, setting: str) -> dict[str, str]:
    """The ``{"<token>": "<scope>"}`` JSON object in ``path`` (a mounted Kubernetes Secret);
    an unreadable or malformed file is refused, naming the setting and never a token."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{setting} {path}: {exc}"
        raise TokenConfigError(msg) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        msg = f'{setting} {path}: not a JSON object {{"<token>": "<scope>"}}'
        raise TokenConfigError(msg)
    return loaded
