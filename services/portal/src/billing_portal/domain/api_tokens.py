"""The short-lived tokens the portal signs to call the services' APIs for a user. Pure.

Per request the portal signs (``billing_runtime.signed_tokens``: JWT, HS256, with the key
shared with the APIs) the user's scope (``operator`` or ``customer:<id>``), the user, the API
it is for (its audience) and a lifetime of a minute or so; invoicing's ``domain/access.py``
checks them and derives the same scope its static tokens have. So the API, not the portal,
decides what a customer user may see.
"""

from __future__ import annotations

from billing_runtime.signed_tokens import MIN_KEY_LENGTH, sign_scope

INVOICING = "billing-invoicing"
INGEST = "billing-ingest"

__all__ = ["INGEST", "INVOICING", "MIN_KEY_LENGTH", "sign_api_token"]


def sign_api_token(
    key: bytes, *, scope: str, user: str, now: float, seconds: int, audience: str = INVOICING
) -> str:
    """A token proving ``scope`` for ``user`` to the API ``audience`` from ``now``."""
    return sign_scope(key, scope=scope, user=user, audience=audience, now=now, seconds=seconds)
