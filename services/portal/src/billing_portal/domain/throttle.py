"""Failed sign-ins slow further attempts down, per account and per address. Pure rules.

The first ``FREE_FAILURES`` failures cost nothing; each further one doubles the wait before
the next attempt is even checked (1 s, 2 s, 4 s ... at most ``MAX_WAIT``). A quiet
``FORGET_AFTER`` forgets the failures; a successful sign-in forgets the account's. Counting per
address too means one address cannot try many accounts quickly, and counting per account
means many addresses cannot try one account quickly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FREE_FAILURES = 5
MAX_WAIT = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Failures:
    """The failed sign-ins counted for one key (an account or an address)."""

    count: int
    last: datetime


def wait_after(count: int) -> timedelta:
    """How long to wait after ``count`` failures before the next attempt is checked."""
    if count < FREE_FAILURES:
        return timedelta(0)
    doublings = min(count - FREE_FAILURES, 20)  # 2**20 s is far beyond the cap already
    return min(timedelta(seconds=2**doublings), MAX_WAIT)


def retry_at(failures: Failures | None, now: datetime) -> datetime | None:
    """When the next attempt may be checked, or None when it may be now."""
    if failures is None or now - failures.last >= FORGET_AFTER:
        return None
    at = failures.last + wait_after(failures.count)
    return at if at > now else None


def after_failure(failures: Failures | None, now: datetime) -> Failures:
    """The failures counted once one more attempt failed."""
    if failures is None or now - failures.last >= FORGET_AFTER:
        return Failures(1, now)
    return Failures(failures.count + 1, now)
