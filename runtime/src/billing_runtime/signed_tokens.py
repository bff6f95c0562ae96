"""Short-lived signed tokens (JWT, HS256) that the portal mints per request and the services'
APIs verify: the claims ``scope`` (the API's scope syntax), ``sub`` (the portal user),
``aud`` (the one API the token is for), ``iat`` and ``exp``.

A token for one API is refused by another (audience), only HS256 is accepted (a token cannot
pick ``none``), and one living longer than ``MAX_SECONDS`` is refused whatever it says.

PyJWT is imported when a token is signed or checked, not with this module: the settings and
the access rules that name these functions are loaded by ``billing`` commands that never touch
a token (issue 11).
"""

from __future__ import annotations

ALGORITHM = "HS256"
MAX_SECONDS = 600
MIN_KEY_LENGTH = 32


def sign_scope(
    key: bytes, *, scope: str, user: str, audience: str, now: float, seconds: int
) -> str:
    """A token proving ``scope`` for ``user`` to the API ``audience``, from ``now``."""
    if len(key) < MIN_KEY_LENGTH:
        msg = f"the signing key must be at least {MIN_KEY_LENGTH} characters"
        raise ValueError(msg)
    claims = {"scope": scope, "sub": user, "aud": audience, "iat": int(now),
              "exp": int(now) + seconds}  # fmt: skip
    import jwt

    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_scope(key: bytes, given: str | None, *, audience: str, now: float) -> str | None:
    """The scope a valid token for ``audience`` carries, or None (not a token, another key
    or audience, expired at ``now``, or living too long)."""
    verified = verify_token(key, given, audience=audience, now=now)
    return None if verified is None else verified[0]


def verify_token(
    key: bytes, given: str | None, *, audience: str, now: float
) -> tuple[str, str] | None:
    """The scope and the user (``sub``) a valid token for ``audience`` carries, or None, as
    ``verify_scope`` says."""
    if not given or len(key) < MIN_KEY_LENGTH or given.count(".") != 2:
        return None
    import jwt

    try:
        claims = jwt.decode(
            given,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["exp", "iat", "aud", "sub", "scope"], "verify_iat": False},
        )
        issued, expires = float(claims["iat"]), float(claims["exp"])
    except (jwt.InvalidTokenError, TypeError, ValueError):
        return None
    if not (issued - 5 <= now < expires) or expires - issued > MAX_SECONDS:
        return None
    return str(claims["scope"]), str(claims["sub"])
