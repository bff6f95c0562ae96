"""Portal users: operators, and customer users who belong to one customer. Pure rules.

A user proves who they are with a password (stored as an Argon2id hash by ``adapters/``); a
new user, or one whose password is reset, gets a one-time link to set it. The link's token is
random and only its SHA-256 digest is stored, so a leaked users collection opens no account.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
"""Long enough for any passphrase, short enough that hashing one costs a bounded time."""
LINK_LIFETIME = timedelta(hours=72)
"""How long a set-password link works."""
LANGUAGES = ("en", "de", "fr")
"""The languages the pages are written in (those of the invoices and emails)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Role(StrEnum):
    """Operators see every customer; a customer user only its own customer."""

    OPERATOR = "operator"
    CUSTOMER = "customer"


class UserError(ValueError):
    """A user cannot be made or changed that way (the message says why)."""


@dataclass(frozen=True)
class User:
    """A portal user; ``email`` (lower-cased) is the sign-in name and the id."""

    email: str
    role: Role
    customer_id: str | None
    language: str = "en"
    password_hash: str | None = None
    link_digest: str | None = None
    link_expires: datetime | None = None
    disabled: bool = False
    """A disabled user cannot sign in, and its open sessions end at their next page."""

    @property
    def api_scope(self) -> str:
        """The scope the APIs give this user: ``operator`` or ``customer:<id>``."""
        return "operator" if self.role is Role.OPERATOR else f"customer:{self.customer_id}"

    @property
    def is_operator(self) -> bool:
        """Whether the user sees the operator console."""
        return self.role is Role.OPERATOR


def normalize_email(email: str) -> str:
    """The sign-in name: trimmed and lower-cased; refused unless it looks like an address."""
    found = email.strip().lower()
    if not _EMAIL.match(found) or len(found) > 254:
        msg = f"{email!r} is not an email address"
        raise UserError(msg)
    return found


def new_user(email: str, role: Role, customer_id: str | None, language: str = "en") -> User:
    """A user without a password yet: operators belong to no customer, a customer user to
    exactly one."""
    if role is Role.OPERATOR and customer_id is not None:
        msg = "an operator belongs to no customer"
        raise UserError(msg)
    if role is Role.CUSTOMER and (customer_id is None or not _CUSTOMER_ID.match(customer_id)):
        msg = "a customer user needs the id of its customer"
        raise UserError(msg)
    if language not in LANGUAGES:
        msg = f"language {language!r} is not one of {', '.join(LANGUAGES)}"
        raise UserError(msg)
    return User(normalize_email(email), role, customer_id, language)


def link_digest(token: str) -> str:
    """What is stored of a set-password link's token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def with_link(user: User, token: str, now: datetime) -> User:
    """The user holding a fresh set-password link (any earlier link stops working)."""
    return replace(user, link_digest=link_digest(token), link_expires=now + LINK_LIFETIME)


def link_is_valid(user: User, token: str, now: datetime) -> bool:
    """Whether ``token`` is the user's current link and has not expired."""
    return (
        user.link_digest is not None
        and user.link_expires is not None
        and user.link_digest == link_digest(token)
        and now < user.link_expires
    )


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None: at least 12 characters (length is what makes a
    password strong; no composition rules, as NIST SP 800-63B advises), at most 256."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"at most {MAX_PASSWORD_LENGTH} characters"
    return None
