"""Who may use the invoicing API: the token rules shared with the other APIs
(``billing_runtime.access``), re-exported where invoicing has always imported them."""

from __future__ import annotations

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

__all__ = [
    "CUSTOMER_PREFIX",
    "MIN_TOKEN_LENGTH",
    "OPERATOR",
    "ForbiddenError",
    "OutOfScopeError",
    "Scope",
    "TokenConfigError",
    "authenticate",
    "parse_scope",
    "parse_tokens",
    "require_customer",
    "require_operator",
]
