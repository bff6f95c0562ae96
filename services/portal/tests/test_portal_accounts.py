"""The account use cases with in-memory fakes: links, passwords, throttled sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from billing_portal.adapters.memory import InMemoryFailureCounter, InMemoryUserStore
from billing_portal.adapters.passwords import Argon2Passwords
from billing_portal.domain.throttle import FREE_FAILURES, wait_after
from billing_portal.domain.users import LINK_LIFETIME, Role, UserError
from billing_portal.service.accounts import (
    AccountPorts,
    LinkError,
    SignInRefusedError,
    UnknownUserError,
    UserExistsError,
    add_user,
    disable_user,
    set_password,
    sign_in,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
def ports() -> AccountPorts:
    fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # quick, still Argon2id
    return AccountPorts(InMemoryUserStore(), InMemoryFailureCounter(), Argon2Passwords(fast))


async def test_a_new_user_sets_the_password_once_through_the_link(ports: AccountPorts) -> None:
    user, token = await add_user(ports, " Ann@Alpha.example ", Role.CUSTOMER, "alpha", now=NOW)
    assert (user.email, user.api_scope, user.password_hash) == (
        "ann@alpha.example", "customer:alpha", None,
    )  # fmt: skip
    stored = await ports.users.get("ann@alpha.example")
    assert stored is not None
    assert token not in repr(stored)
    with pytest.raises(UserError, match="12"):
        await set_password(ports, token, "short", NOW)
    done = await set_password(ports, token, PASSWORD, NOW)
    assert done.password_hash is not None
    assert done.password_hash.startswith("$argon2id$")
    with pytest.raises(LinkError):  # used
        await set_password(ports, token, PASSWORD, NOW)
    assert (await sign_in(ports, "ANN@alpha.example", PASSWORD, "10.0.0.1", NOW)).email == (
        "ann@alpha.example"
    )


async def test_a_link_expires_and_a_reset_replaces_it(ports: AccountPorts) -> None:
    _, first = await add_user(ports, "op@example.com", Role.OPERATOR, None, now=NOW)
    with pytest.raises(UserExistsError):
        await add_user(ports, "op@example.com", Role.OPERATOR, None, now=NOW)
    _, second = await add_user(ports, "op@example.com", Role.OPERATOR, None, now=NOW, reset=True)
    with pytest.raises(LinkError):
        await set_password(ports, first, PASSWORD, NOW)
    with pytest.raises(LinkError):
        await set_password(ports, second, PASSWORD, NOW + LINK_LIFETIME)
    _, third = await add_user(ports, "op@example.com", Role.OPERATOR, None, now=NOW, reset=True)
    assert (await set_password(ports, third, PASSWORD, NOW)).is_operator


@pytest.mark.parametrize(
    ("role", "customer"), [(Role.OPERATOR, "alpha"), (Role.CUSTOMER, None), (Role.CUSTOMER, "a b")]
)
async def test_roles_and_customers_must_agree(
    ports: AccountPorts, role: Role, customer: str | None
) -> None:
    with pytest.raises(UserError):
        await add_user(ports, "x@example.com", role, customer, now=NOW)


async def test_failed_sign_ins_slow_down_the_account_and_the_address(ports: AccountPorts) -> None:
    _, token = await add_user(ports, "ann@alpha.example", Role.CUSTOMER, "alpha", now=NOW)
    await set_password(ports, token, PASSWORD, NOW)
    for _ in range(FREE_FAILURES):
        with pytest.raises(SignInRefusedError) as refused:
            await sign_in(ports, "ann@alpha.example", "wrong password!", "10.0.0.1", NOW)
        assert refused.value.wait_seconds == 0
    # the right password now has to wait: from this address, and for this account elsewhere
    for address in ("10.0.0.1", "10.9.9.9"):
        with pytest.raises(SignInRefusedError) as refused:
            await sign_in(ports, "ann@alpha.example", PASSWORD, address, NOW)
        assert refused.value.wait_seconds == 1
    # ... and the address may not try another account either
    with pytest.raises(SignInRefusedError) as refused:
        await sign_in(ports, "bob@alpha.example", "whatever password", "10.0.0.1", NOW)
    assert refused.value.wait_seconds == 1
    later = NOW + timedelta(seconds=2)
    assert (await sign_in(ports, "ann@alpha.example", PASSWORD, "10.0.0.2", later)).email
    assert await ports.failures.get("account:ann@alpha.example") is None


def test_the_wait_doubles_and_is_capped() -> None:
    assert [wait_after(n).total_seconds() for n in range(4, 9)] == [0, 1, 2, 4, 8]
    assert wait_after(100) == timedelta(minutes=15)


async def test_an_unknown_account_fails_like_a_wrong_password(ports: AccountPorts) -> None:
    with pytest.raises(SignInRefusedError) as refused:
        await sign_in(ports, "nobody@example.com", PASSWORD, "10.0.0.1", NOW)
    assert refused.value.wait_seconds == 0
    assert (await ports.failures.get("account:nobody@example.com")) is not None


async def test_a_disabled_user_cannot_sign_in_nor_use_a_link(ports: AccountPorts) -> None:
    _, token = await add_user(ports, "ann@alpha.example", Role.CUSTOMER, "alpha", now=NOW)
    await set_password(ports, token, PASSWORD, NOW)
    before, after = await disable_user(ports, " ANN@alpha.example")
    assert (before.disabled, after.disabled) == (False, True)
    with pytest.raises(SignInRefusedError) as refused:
        await sign_in(ports, "ann@alpha.example", PASSWORD, "10.0.0.1", NOW)
    assert refused.value.wait_seconds == 0
    _, fresh = await add_user(
        ports, "ann@alpha.example", Role.CUSTOMER, "alpha", now=NOW, reset=True
    )
    with pytest.raises(LinkError):
        await set_password(ports, fresh, "another long passphrase", NOW)
    with pytest.raises(UnknownUserError):
        await disable_user(ports, "nobody@alpha.example")
