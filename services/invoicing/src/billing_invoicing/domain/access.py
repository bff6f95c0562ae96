"""Who may use the invoicing API: the token rules shared with the other APIs
(``billing_runtime.access``), re-exported where invoicing has always imported them."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import replace

from billing_runtime.access import (
    CUSTOMER_PREFIX,
    MIN_TOKEN_LENGTH,
    OPERATOR,
    ForbiddenError,
    OutOfScopeError,
    Scope,
    TokenConfigError,
    authenticate,
    parse_scope,
    parse_tokens,
    require_customer,
    require_operator,
)
from billing_runtime.signed_tokens import MIN_KEY_LENGTH, verify_token

__all__ = [
    "CUSTOMER_PREFIX",
    "MIN_SIGNING_KEY_LENGTH",
    "MIN_TOKEN_LENGTH",
    "OPERATOR",
    "PORTAL_AUDIENCE",
    "ForbiddenError",
    "OutOfScopeError",
    "Scope",
    "TokenConfigError",
    "authenticate",
    "is_document_reader",
    "parse_document_reader_tokens",
    "parse_scope",
    "parse_tokens",
    "require_customer",
    "require_operator",
    "verify_signed_token",
]

# --- short-lived signed tokens (the portal's) ---------------------------------------------

PORTAL_AUDIENCE = "billing-invoicing"
MIN_SIGNING_KEY_LENGTH = MIN_KEY_LENGTH


def verify_signed_token(key: bytes, given: str | None, *, now: float) -> Scope | None:
    """The scope a short-lived signed token from the portal proves (JWT, HS256, with the key
    shared with the portal, audience ``billing-invoicing``; ``billing_runtime.signed_tokens``),
    or None when it is not one, is badly signed, expired, or lives too long. The scopes are
    the static tokens' (``operator``, ``customer:<id>``); the audit trail names the portal
    user (``user:<email>``)."""
    verified = verify_token(key, given, audience=PORTAL_AUDIENCE, now=now)
    if verified is None:
        return None
    scope, user = verified
    try:
        return replace(parse_scope(scope), name=f"user:{user}")
    except TokenConfigError:
        return None


# --- document readers (notify's) ----------------------------------------------------------


def parse_document_reader_tokens(tokens: Collection[str]) -> tuple[bytes, ...]:
    """The configured document-reader tokens; a short one is refused (named by its position
    and first four characters only)."""
    for position, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_LENGTH:
            msg = (
                f"document-reader token #{position} ({token[:4]}...) is shorter than "
                f"{MIN_TOKEN_LENGTH} characters"
            )
            raise TokenConfigError(msg)
    return tuple(token.encode() for token in tokens)


def is_document_reader(tokens: Collection[bytes], given: str | None) -> bool:
    """Whether ``given`` is one of the document-reader tokens: the credential of a service
    (notify) that may read issued documents by file id and nothing else. Kept apart from the
    scopes above, so that no other route, here or in another API, can ever accept it. Every
    token is compared, each in constant time, as :func:`authenticate` does."""
    if not given:
        return False
    candidate = given.encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(candidate, token)
    return found
