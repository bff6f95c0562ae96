"""Who may use the invoicing API: bearer tokens and their scopes. Pure rules, no I/O.

A token maps to a scope: ``operator`` (everything: every customer, payments, period close,
margin report, catalog) or ``customer:<id>`` (that customer's invoices, dues and contacts only).
A token is recognised by comparing it with every configured token in constant time, so the
time an answer takes says nothing about how much of a token was right.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from billing_runtime.signed_tokens import MIN_KEY_LENGTH, verify_scope

OPERATOR = "operator"
CUSTOMER_PREFIX = "customer:"


class TokenConfigError(ValueError):
    """A configured token or scope is not usable (the message names which, never the token)."""


@dataclass(frozen=True)
class Scope:
    """What a token may see: everything (``customer_id`` None) or one customer."""

    customer_id: str | None

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
            parsed[token.encode()] = parse_scope(scope)
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


# --- short-lived signed tokens (the portal's) ---------------------------------------------

PORTAL_AUDIENCE = "billing-invoicing"
MIN_SIGNING_KEY_LENGTH = MIN_KEY_LENGTH


def verify_signed_token(key: bytes, given: str | None, *, now: float) -> Scope | None:
    """The scope a short-lived signed token from the portal proves (JWT, HS256, with the key
    shared with the portal, audience ``billing-invoicing``; ``billing_runtime.signed_tokens``),
    or None when it is not one, is badly signed, expired, or lives too long. The scopes are
    the static tokens' (``operator``, ``customer:<id>``)."""
    scope = verify_scope(key, given, audience=PORTAL_AUDIENCE, now=now)
    if scope is None:
        return None
    try:
        return parse_scope(scope)
    except TokenConfigError:
        return None
