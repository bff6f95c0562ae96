"""Whose fault a failure is: the message's own (dead-letter it with the reason and go on with
the batch) or the infrastructure's (let the batch be redelivered once it answers again).

A message that fails for a reason of its own fails the same way every time it is delivered:
letting it fail the batch would redeliver that batch forever and stall its partition. So every
exception of one message's handling is its own unless it says the database or the network did
not answer; those are transient for every message alike, and dead-lettering a whole outage's
worth of messages would only make work.
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure

from billing_notify.domain.errors import NotificationError

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionFailure,  # MongoDB unreachable, lost, or no server selected in time
    ConnectionError,  # a socket refused or reset
    TimeoutError,
)


def own_failure(exc: Exception) -> str | None:
    """The reason to dead-letter a message with, or ``None`` if ``exc`` is the
    infrastructure's (re-raise it: the batch is redelivered)."""
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return None
    if isinstance(exc, NotificationError):
        return f"{type(exc).__name__}: {exc}"
    return f"unexpected {type(exc).__name__}: {exc}"
