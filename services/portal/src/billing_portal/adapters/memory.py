"""In-memory fakes of the portal's ports, for unit tests."""

from __future__ import annotations

from dataclasses import replace

from billing_portal.domain.throttle import Failures
from billing_portal.domain.users import User


class InMemoryUserStore:
    """Fake of :class:`~billing_portal.ports.UserStore`."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}

    async def get(self, email: str) -> User | None:
        """See the port."""
        return self.users.get(email)

    async def by_link(self, digest: str) -> User | None:
        """See the port."""
        return next((u for u in self.users.values() if u.link_digest == digest), None)

    async def put(self, user: User) -> None:
        """See the port."""
        self.users[user.email] = replace(user)

    async def all(self) -> list[User]:
        """See the port."""
        return [self.users[k] for k in sorted(self.users)]


class InMemoryFailureCounter:
    """Fake of :class:`~billing_portal.ports.FailureCounter`."""

    def __init__(self) -> None:
        self.failures: dict[str, Failures] = {}

    async def get(self, key: str) -> Failures | None:
        """See the port."""
        return self.failures.get(key)

    async def put(self, key: str, failures: Failures) -> None:
        """See the port."""
        self.failures[key] = failures

    async def forget(self, key: str) -> None:
        """See the port."""
        self.failures.pop(key, None)
