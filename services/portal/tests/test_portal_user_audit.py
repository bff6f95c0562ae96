"""The audit entries of changes to portal users: what each says, and that it never shows a
password hash or a link's digest."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from billing_portal.domain.users import Role, new_user, with_link
from billing_portal.service import user_audit

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_new_user_and_a_reset_link_are_told_apart() -> None:
    user = with_link(new_user("ann@alpha.example", Role.CUSTOMER, "alpha"), "token-1", NOW)
    audit_id, added = user_audit.user_added(user, None, "cli:ops")
    assert (added.action, added.actor, added.subject, added.customer_id, added.before) == (
        "user.added", "cli:ops", "user:ann@alpha.example", "alpha", None,
    )  # fmt: skip
    assert audit_id == f"user.added:ann@alpha.example:{user.link_digest}"
    having = replace(user, password_hash="$argon2id$v=19$secret", link_digest=None)
    reset = with_link(having, "token-2", NOW)
    _, entry = user_audit.user_added(reset, having, "cli:ops")
    assert entry.action == "user.password_reset"
    assert entry.before is not None
    assert entry.before["password_set"] is True
    text = entry.model_dump_json()
    assert "argon2" not in text
    assert str(reset.link_digest) not in text


def test_disabling_shows_the_access_before_and_after() -> None:
    before = new_user("op@example.com", Role.OPERATOR, None)
    _, entry = user_audit.user_disabled(before, replace(before, disabled=True), "cli:ops")
    assert entry.action == "user.disabled"
    assert entry.before == user_audit.access_of(before)
    assert entry.after is not None
    assert (entry.before["disabled"], entry.after["disabled"]) == (False, True)
    assert entry.customer_id is None
