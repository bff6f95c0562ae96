"""Password hashing: Argon2id (argon2-cffi, RFC 9106's recommended parameters by default)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Passwords:
    """Hash and check passwords with Argon2id; ``needs_rehash`` when parameters changed."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # checked against when the account does not exist, so that case takes as long
        self._dummy = self._hasher.hash("not a password of anyone")

    def hash(self, password: str) -> str:
        """The Argon2id hash (with its salt and parameters) of ``password``."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored`` (a missing hash is checked against a dummy,
        so an unknown account answers in the same time and still fails)."""
        try:
            # an empty hash is missing too: it must not fall back to the dummy and then pass
            return self._hasher.verify(stored or self._dummy, password) and bool(stored)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than today's."""
        return self._hasher.check_needs_rehash(stored)
