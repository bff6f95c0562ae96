"""The portal's storage ports, one contract each, run against the in-memory fake
(``adapters/memory.py``) and the MongoDB adapter: users (by email, by set-password link, all)
and failed sign-ins per key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_portal.adapters.memory import InMemoryFailureCounter, InMemoryUserStore
from billing_portal.adapters.user_repo import MongoFailureCounter, MongoUserStore
from billing_portal.domain.throttle import Failures
from billing_portal.domain.users import Role, User
from billing_portal.ports import FailureCounter, UserStore

if TYPE_CHECKING:
    from conftest import Infra

BACKENDS = ["memory", pytest.param("mongo", marks=pytest.mark.integration)]
AT = datetime(2024, 10, 1, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def own_database(request: pytest.FixtureRequest) -> AsyncIterator[AsyncDatabase[Any]]:
    """This test's database, dropped afterwards (only the MongoDB runs ask for it: the
    synchronous fixtures are taken here, as pytest-asyncio cannot hand an async one to
    ``getfixturevalue``)."""
    infra: Infra = request.getfixturevalue("infra")
    namespace: str = request.getfixturevalue("namespace")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        yield client[namespace]
        await client.drop_database(namespace)
    finally:
        await client.close()


@pytest.fixture(params=BACKENDS)
async def users(request: pytest.FixtureRequest) -> AsyncIterator[UserStore]:
    if request.param == "memory":
        yield InMemoryUserStore()
        return
    async with own_database(request) as db:
        yield MongoUserStore(db)


async def test_users_are_found_by_email_and_by_their_current_link_and_listed_by_email(
    users: UserStore,
) -> None:
    dana = User(
        "dana@northwind.example",
        Role.CUSTOMER,
        "northwind",
        language="de",
        link_digest="d1",
        link_expires=AT + timedelta(hours=72),
    )
    ops = User("ops@cumulus.example", Role.OPERATOR, None, password_hash="$argon2id$x")
    await users.put(dana)
    await users.put(ops)
    assert await users.get("dana@northwind.example") == dana
    assert await users.get("nobody@example.com") is None
    assert await users.by_link("d1") == dana
    assert await users.by_link("d2") is None

    changed = replace(dana, password_hash="$argon2id$y", link_digest=None, link_expires=None)
    await users.put(changed)  # the link used: it finds no one any more
    assert await users.get("dana@northwind.example") == changed
    assert await users.by_link("d1") is None
    assert await users.all() == [changed, ops]


@pytest.fixture(params=BACKENDS)
async def failures(request: pytest.FixtureRequest) -> AsyncIterator[FailureCounter]:
    if request.param == "memory":
        yield InMemoryFailureCounter()
        return
    async with own_database(request) as db:
        yield MongoFailureCounter(db)


async def test_failed_sign_ins_are_counted_per_key_and_forgotten(
    failures: FailureCounter,
) -> None:
    assert await failures.get("account:dana@northwind.example") is None
    await failures.put("account:dana@northwind.example", Failures(1, AT))
    await failures.put("address:192.0.2.1", Failures(3, AT + timedelta(seconds=5)))
    await failures.put("account:dana@northwind.example", Failures(2, AT + timedelta(seconds=9)))
    assert await failures.get("account:dana@northwind.example") == Failures(
        2, AT + timedelta(seconds=9)
    )
    await failures.forget("account:dana@northwind.example")
    await failures.forget("account:never-failed@example.com")
    assert await failures.get("account:dana@northwind.example") is None
    assert await failures.get("address:192.0.2.1") == Failures(3, AT + timedelta(seconds=5))
