"""A customer's contacts and their roles (Billing, Tech, DPO). Pure rules, no I/O.

A contact is identified by its email address, compared without regard to case: two contacts
of one customer never share an address. The rules a change must keep:

* a customer that has a Billing contact keeps at least one: invoices, receipts and reminders
  go to the Billing contacts, so the change that would leave none is refused (add the new
  Billing contact first, then take the role from the old one, as the panel's help says);
* at most one contact is primary: making one primary makes the others not primary;
* a contact holds each role at most once (roles are kept in Billing, Tech, DPO order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from billing_catalog.models import Contact, ContactRole

ROLE_ORDER = list(ContactRole)


class ContactError(ValueError):
    """A contact change that cannot be made; ``field`` names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ContactNotFoundError(ContactError):
    """The customer has no contact with that address."""


class ContactConflictError(ContactError):
    """The change contradicts the customer's other contacts (or a rule above)."""


@dataclass(frozen=True)
class ContactChange:
    """A partial change of one contact: None leaves a field as it is."""

    email: str | None = None
    name: str | None = None
    roles: Sequence[ContactRole] | None = None
    primary: bool | None = None


def contact_id(contact: Contact) -> str:
    """A contact's id in the API: its email address, lower-cased."""
    return str(contact.email).casefold()


def _ordered(roles: Sequence[ContactRole]) -> list[ContactRole]:
    return [r for r in ROLE_ORDER if r in set(roles)]


def _index(contacts: Sequence[Contact], cid: str) -> int:
    for i, c in enumerate(contacts):
        if contact_id(c) == cid.casefold():
            return i
    msg = f"no contact {cid!r}"
    raise ContactNotFoundError("contact_id", msg)


def _check(before: Sequence[Contact], after: list[Contact], culprit: str) -> list[Contact]:
    ids = [contact_id(c) for c in after]
    if len(set(ids)) != len(ids):
        msg = f"another contact already has the address {culprit!r}"
        raise ContactConflictError("email", msg)
    had_billing = any(ContactRole.BILLING in c.roles for c in before)
    if had_billing and not any(ContactRole.BILLING in c.roles for c in after):
        msg = (
            f"this would leave no contact with the Billing role ({culprit}): give the role to "
            "another contact first"
        )
        raise ContactConflictError("roles", msg)
    return after


def _only_primary(contacts: list[Contact], keep: int) -> list[Contact]:
    return [
        c.model_copy(update={"primary": False}) if i != keep and c.primary else c
        for i, c in enumerate(contacts)
    ]


def add_contact(contacts: Sequence[Contact], new: Contact) -> list[Contact]:
    """The contacts with ``new`` appended (its roles ordered; primary taken from the others)."""
    new = new.model_copy(update={"roles": _ordered(new.roles)})
    after = [*contacts, new]
    if new.primary:
        after = _only_primary(after, len(after) - 1)
    return _check(contacts, after, str(new.email))


def change_contact(contacts: Sequence[Contact], cid: str, change: ContactChange) -> list[Contact]:
    """The contacts with one of them changed as ``change`` says."""
    i = _index(contacts, cid)
    update: dict[str, object] = {}
    if change.email is not None:
        update["email"] = change.email
    if change.name is not None:
        update["name"] = change.name or None
    if change.roles is not None:
        update["roles"] = _ordered(change.roles)
    if change.primary is not None:
        update["primary"] = change.primary
    # validate again (the email's form) by building the contact from its fields
    changed = Contact.model_validate(contacts[i].model_dump() | update)
    after = [*contacts[:i], changed, *contacts[i + 1 :]]
    if changed.primary:
        after = _only_primary(after, i)
    return _check(contacts, after, str(changed.email))


def remove_contact(contacts: Sequence[Contact], cid: str) -> list[Contact]:
    """The contacts without the one named."""
    i = _index(contacts, cid)
    return _check(contacts, [*contacts[:i], *contacts[i + 1 :]], str(contacts[i].email))
