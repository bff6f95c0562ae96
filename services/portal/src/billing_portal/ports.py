"""The portal's ports: where users live, where failed sign-ins are counted, password hashing
and the billing APIs. The stores have an in-memory fake (``adapters/memory.py``) and a MongoDB
implementation under the same contract tests (``tests/test_portal_ports_contract.py``); the
billing API's fake, with its demo invoices, is ``tests/portal_fakes.py``."""

from __future__ import annotations

from typing import Any, Protocol

from billing_portal.domain.throttle import Failures
from billing_portal.domain.users import User

Json = Any


class UserStore(Protocol):
    """Port: the portal's users."""

    async def get(self, email: str) -> User | None:
        """The user signing in with ``email`` (normalized), or None."""
        ...

    async def by_link(self, digest: str) -> User | None:
        """The user whose current set-password link has this digest, or None."""
        ...

    async def put(self, user: User) -> None:
        """Store the user (a new one, or a change of one)."""
        ...

    async def all(self) -> list[User]:
        """Every user, by email."""
        ...


class FailureCounter(Protocol):
    """Port: failed sign-ins per key (``account:<email>``, ``address:<ip>``)."""

    async def get(self, key: str) -> Failures | None:
        """The failures counted for ``key``, or None."""
        ...

    async def put(self, key: str, failures: Failures) -> None:
        """Store the failures counted for ``key``."""
        ...

    async def forget(self, key: str) -> None:
        """Forget ``key``'s failures."""
        ...


class ApiError(Exception):
    """The API refused or failed: its HTTP status and its ``detail``."""

    def __init__(self, status: int, detail: Json) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail

    def message(self) -> str:
        """The detail as one line a person can read."""
        if isinstance(self.detail, list):
            return "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in self.detail
            )
        return str(self.detail)


class BillingApi(Protocol):
    """Port: the invoicing ``/v1`` API (and ingest's bills), called as one user.

    ``user`` is who asks; the implementation proves that user's scope to the API, which decides
    what the user may see (404 for another customer's resources). Errors raise ``ApiError``.
    """

    async def get_json(self, user: User, path: str, params: dict[str, str] | None = None) -> Json:
        """GET a JSON answer of the invoicing API."""
        ...

    async def send_json(self, user: User, method: str, path: str, body: Json) -> Json:
        """POST/PATCH/DELETE on the invoicing API; the JSON answer (None for 204)."""
        ...

    async def get_file(self, user: User, path: str) -> tuple[bytes, str, str]:
        """A file of the invoicing API: bytes, media type, file name."""
        ...

    async def bills(self, user: User, period: str) -> Json:
        """The bills ingest loaded whose rows bill ``period`` (operators)."""
        ...


class Passwords(Protocol):
    """Port: password hashing (Argon2id in ``adapters/passwords.py``)."""

    def hash(self, password: str) -> str:
        """The hash to store."""
        ...

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether the password matches (False for None, in the same time)."""
        ...

    def needs_rehash(self, stored: str) -> bool:
        """Whether the stored hash should be made again with today's parameters."""
        ...
