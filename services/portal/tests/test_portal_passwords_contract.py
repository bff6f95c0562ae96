"""The :class:`~billing_portal.ports.Passwords` port's contract, run against the Argon2id adapter
as the portal runs it (argon2-cffi's RFC 9106 parameters) and as every portal unit test uses it
in place of a fake (the same adapter with the cheapest Argon2id parameters): a hash that is not
the password and verifies only it, salted; ``verify`` False for a missing or unreadable hash
(for a missing one, in about the time of a real check); ``needs_rehash`` only for a hash made
with other parameters."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher

from billing_portal.adapters.passwords import Argon2Passwords
from billing_portal.ports import Passwords

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery staple — ünïcødé"


@pytest.fixture(scope="module", params=["production", "unit-test"])
def hasher(request: pytest.FixtureRequest) -> PasswordHasher:
    return PasswordHasher() if request.param == "production" else FAST


@pytest.fixture(scope="module")
def passwords(hasher: PasswordHasher) -> Passwords:
    return Argon2Passwords(hasher)


def test_a_hash_verifies_its_password_and_no_other(passwords: Passwords) -> None:
    stored = passwords.hash(PASSWORD)

    assert PASSWORD not in stored
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD[:-1])
    assert not passwords.verify(stored, PASSWORD.upper())
    assert not passwords.verify(stored, "")


def test_the_same_password_hashes_differently_each_time(passwords: Passwords) -> None:
    first, second = passwords.hash(PASSWORD), passwords.hash(PASSWORD)

    assert first != second  # salted
    assert passwords.verify(first, PASSWORD)
    assert passwords.verify(second, PASSWORD)


@pytest.mark.parametrize("stored", [None, "", "not a hash", "$argon2id$v=19$m=8,t=1,p=1$AAAA$"])
def test_a_missing_or_unreadable_hash_verifies_nothing(
    passwords: Passwords, stored: str | None
) -> None:
    assert not passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, "not a password of anyone")  # the dummy's password


def test_a_missing_hash_takes_about_as_long_as_a_real_check(passwords: Passwords) -> None:
    stored = passwords.hash(PASSWORD)

    def fastest(check: str | None) -> float:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            passwords.verify(check, "a wrong password")
            times.append(time.perf_counter() - started)
        return min(times)

    real, missing = fastest(stored), fastest(None)

    # the same Argon2id work either way: not a shortcut that tells absent accounts apart
    assert missing > real / 3


def test_only_a_hash_made_with_other_parameters_needs_rehashing(
    passwords: Passwords, hasher: PasswordHasher
) -> None:
    other = PasswordHasher() if hasher is FAST else FAST

    assert not passwords.needs_rehash(passwords.hash(PASSWORD))
    assert passwords.needs_rehash(other.hash(PASSWORD))
