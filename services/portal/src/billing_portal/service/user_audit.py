"""What the portal records in the audit trail (``billing_runtime.audit``) when its users
change: a user added or given a new set-password link, a password set, a user disabled.

Built at the entrypoints (the ``billing users`` commands, the set-password page) once the
change is stored. Each builder returns ``(audit id, entry)``: the id is the change's own stable
id where it has one (the link's digest), so a retried change is recorded once. ``before`` and
``after`` show the user's access, never a password hash or a link's digest.
"""

from __future__ import annotations

from typing import Any

from billing_portal.domain.users import User
from billing_schemas.events import AuditEntry

Audited = tuple[str | None, AuditEntry]


def access_of(user: User) -> dict[str, Any]:
    """What the audit trail shows of a user: role, customer, whether it can sign in."""
    return {
        "email": user.email,
        "role": user.role.value,
        "customer_id": user.customer_id,
        "language": user.language,
        "password_set": user.password_hash is not None,
        "disabled": user.disabled,
    }


def _entry(action: str, user: User, actor: str, summary: str, before: User | None) -> AuditEntry:
    return AuditEntry(
        action=action,
        actor=actor,
        subject=f"user:{user.email}",
        customer_id=user.customer_id,
        summary=summary,
        before=None if before is None else access_of(before),
        after=access_of(user),
    )


def user_added(user: User, before: User | None, actor: str) -> Audited:
    """``user.added`` for a new user, ``user.password_reset`` for a new link given to an
    existing one (its old password keeps working until the new one is set)."""
    if before is None:
        who = f"customer {user.customer_id}" if user.customer_id else "operator"
        entry = _entry("user.added", user, actor, f"portal user {user.email} added ({who})", None)
    else:
        summary = f"portal user {user.email} given a new set-password link"
        entry = _entry("user.password_reset", user, actor, summary, before)
    return f"{entry.action}:{user.email}:{user.link_digest}", entry


def password_set(user: User, link_digest: str, before: User, actor: str) -> Audited:
    """``user.password_set``: the user set its password through its one-time link."""
    summary = f"portal user {user.email} set a password"
    return f"user.password_set:{user.email}:{link_digest}", _entry(
        "user.password_set", user, actor, summary, before
    )


def user_disabled(before: User, after: User, actor: str) -> Audited:
    """``user.disabled``: the user can no longer sign in."""
    summary = f"portal user {after.email} disabled"
    return None, _entry("user.disabled", after, actor, summary, before)
