"""The short-lived tokens the portal signs to call the invoicing API for a user. Pure.

Per request the portal signs (JWT, HS256, with the key shared with invoicing) the user's scope
(``operator`` or ``customer:<id>``), the user, the audience and a lifetime of a minute or so;
invoicing's ``domain/access.py`` checks them and derives the same scope its static tokens have.
So the API, not the portal, decides what a customer user may see.
"""

from __future__ import annotations

import jwt

AUDIENCE = "billing-invoicing"
ALGORITHM = "HS256"
MIN_KEY_LENGTH = 32


def sign_api_token(key: bytes, *, scope: str, user: str, now: float, seconds: int) -> str:
    """A token proving ``scope`` for ``user`` from ``now`` for ``seconds``."""
    if len(key) < MIN_KEY_LENGTH:
        msg = f"the API signing key must be at least {MIN_KEY_LENGTH} characters"
        raise ValueError(msg)
    claims = {
        "scope": scope,
        "sub": user,
        "aud": AUDIENCE,
        "iat": int(now),
        "exp": int(now) + seconds,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)
