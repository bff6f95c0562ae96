"""Use cases of the portal's users: add one (with a set-password link), set a password from a
link, disable one, sign in (slowed down after failures), change the page language.

Each takes its ports as arguments; ``now`` is given so the rules are tested without a clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from billing_portal.domain.throttle import after_failure, retry_at
from billing_portal.domain.users import (
    LANGUAGES,
    Role,
    User,
    UserError,
    link_digest,
    link_is_valid,
    new_user,
    normalize_email,
    password_problem,
    with_link,
)
from billing_portal.ports import FailureCounter, Passwords, UserStore


@dataclass
class AccountPorts:
    """What these use cases need."""

    users: UserStore
    failures: FailureCounter
    passwords: Passwords


class UserExistsError(UserError):
    """There is a user with that email already."""


class LinkError(UserError):
    """The set-password link is unknown, used or expired."""


class SignInRefusedError(Exception):
    """Wrong email or password, or too many failures: ``wait_seconds`` > 0 says to wait."""

    def __init__(self, wait_seconds: int = 0) -> None:
        super().__init__("sign-in refused")
        self.wait_seconds = wait_seconds


async def add_user(
    ports: AccountPorts,
    email: str,
    role: Role,
    customer_id: str | None,
    *,
    now: datetime,
    language: str = "en",
    reset: bool = False,
) -> tuple[User, str]:
    """Add a user without a password and return it with the token of its one-time
    set-password link; with ``reset``, give an existing user a new link (the old password
    keeps working until the new one is set)."""
    user = new_user(email, role, customer_id, language)
    existing = await ports.users.get(user.email)
    if existing is not None:
        if not reset:
            msg = f"there is a user {user.email} already (--reset gives it a new link)"
            raise UserExistsError(msg)
        user = existing
    token = secrets.token_urlsafe(32)
    user = with_link(user, token, now)
    await ports.users.put(user)
    return user, token


async def link_user(ports: AccountPorts, token: str, now: datetime) -> User:
    """The user a set-password link is for (LinkError if unknown, used or expired)."""
    user = await ports.users.by_link(link_digest(token))
    if user is None or not link_is_valid(user, token, now):
        msg = "unknown, used or expired link"
        raise LinkError(msg)
    return user


async def set_password(ports: AccountPorts, token: str, password: str, now: datetime) -> User:
    """Set the user's password from its link; the link then stops working."""
    user = await link_user(ports, token, now)
    if user.disabled:
        msg = "unknown, used or expired link"  # a disabled user's link opens nothing
        raise LinkError(msg)
    problem = password_problem(password)
    if problem is not None:
        raise UserError(problem)
    user = replace(
        user, password_hash=ports.passwords.hash(password), link_digest=None, link_expires=None
    )
    await ports.users.put(user)
    return user


async def sign_in(
    ports: AccountPorts, email: str, password: str, address: str, now: datetime
) -> User:
    """The user, if the password is right and neither the account nor the address must wait
    after failed attempts; each failure counts against both."""
    try:
        account = f"account:{normalize_email(email)}"
    except UserError:
        account = "account:?"
    keys = (account, f"address:{address}")
    waits = [retry_at(await ports.failures.get(k), now) for k in keys]
    late = max((w for w in waits if w is not None), default=None)
    if late is not None:
        raise SignInRefusedError(max(1, int((late - now).total_seconds() + 0.999)))
    user = await ports.users.get(account.removeprefix("account:"))
    stored = user.password_hash if user is not None else None
    verified = ports.passwords.verify(stored, password)  # also for no user: the same time
    if user is None or user.disabled or stored is None or not verified:
        for key in keys:
            await ports.failures.put(key, after_failure(await ports.failures.get(key), now))
        raise SignInRefusedError
    await ports.failures.forget(account)
    if ports.passwords.needs_rehash(stored):
        user = replace(user, password_hash=ports.passwords.hash(password))
        await ports.users.put(user)
    return user


class UnknownUserError(UserError):
    """There is no user with that email."""


async def disable_user(ports: AccountPorts, email: str) -> tuple[User, User]:
    """Disable a user (before, after): it can no longer sign in, its open sessions end at their
    next page, and its set-password link stops working."""
    before = await ports.users.get(normalize_email(email))
    if before is None:
        msg = f"there is no user {email.strip().lower()}"
        raise UnknownUserError(msg)
    after = replace(before, disabled=True, link_digest=None, link_expires=None)
    await ports.users.put(after)
    return before, after


async def set_language(ports: AccountPorts, user: User, language: str) -> User:
    """Change the language the user's pages are written in."""
    if language not in LANGUAGES:
        msg = f"language {language!r} is not one of {', '.join(LANGUAGES)}"
        raise UserError(msg)
    changed = replace(user, language=language)
    await ports.users.put(changed)
    return changed
