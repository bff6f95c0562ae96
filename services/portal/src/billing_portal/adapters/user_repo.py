"""The portal's users and failed sign-ins in MongoDB (the portal's own collections).

``portal_users``: one document per user, ``_id`` its email; ``portal_password_links``: the
digest of each user's current set-password link as ``_id`` (so following a link is a pure
``_id`` lookup); ``portal_signin_failures``: failures per key. Every read is by ``_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from billing_portal.domain.throttle import Failures
from billing_portal.domain.users import Role, User

Doc = dict[str, Any]
USERS = "portal_users"
LINKS = "portal_password_links"
FAILURES = "portal_signin_failures"


def _user(doc: Doc) -> User:
    return User(
        email=str(doc["_id"]),
        role=Role(doc["role"]),
        customer_id=doc.get("customer_id"),
        language=str(doc.get("language") or "en"),
        password_hash=doc.get("password_hash"),
        link_digest=doc.get("link_digest"),
        link_expires=doc.get("link_expires"),
        disabled=bool(doc.get("disabled", False)),
    )


class MongoUserStore:
    """:class:`~billing_portal.ports.UserStore` over MongoDB."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._users = db[USERS]
        self._links = db[LINKS]

    async def get(self, email: str) -> User | None:
        """See the port."""
        doc = await self._users.find_one({"_id": email})
        return None if doc is None else _user(doc)

    async def by_link(self, digest: str) -> User | None:
        """See the port."""
        link = await self._links.find_one({"_id": digest})
        if link is None:
            return None
        user = await self.get(str(link["email"]))
        return user if user is not None and user.link_digest == digest else None

    async def put(self, user: User) -> None:
        """See the port."""
        before = await self.get(user.email)
        if before is not None and before.link_digest and before.link_digest != user.link_digest:
            await self._links.delete_one({"_id": before.link_digest})
        if user.link_digest:
            await self._links.replace_one(
                {"_id": user.link_digest}, {"email": user.email}, upsert=True
            )
        await self._users.replace_one(
            {"_id": user.email},
            {
                "role": user.role.value,
                "customer_id": user.customer_id,
                "language": user.language,
                "password_hash": user.password_hash,
                "link_digest": user.link_digest,
                "link_expires": user.link_expires,
                "disabled": user.disabled,
            },
            upsert=True,
        )

    async def all(self) -> list[User]:
        """See the port."""
        return [_user(d) async for d in self._users.find({}).sort("_id", 1)]


class MongoFailureCounter:
    """:class:`~billing_portal.ports.FailureCounter` over MongoDB."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._failures = db[FAILURES]

    async def get(self, key: str) -> Failures | None:
        """See the port."""
        doc = await self._failures.find_one({"_id": key})
        if doc is None:
            return None
        last: datetime = doc["last"]
        return Failures(int(doc["count"]), last)

    async def put(self, key: str, failures: Failures) -> None:
        """See the port."""
        await self._failures.replace_one(
            {"_id": key}, {"count": failures.count, "last": failures.last}, upsert=True
        )

    async def forget(self, key: str) -> None:
        """See the port."""
        await self._failures.delete_one({"_id": key})
