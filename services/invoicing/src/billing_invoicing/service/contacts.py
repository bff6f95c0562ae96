"""Use cases: list, add, change and remove a customer's contacts (the panel's Contact tab).

The rules are in :mod:`billing_invoicing.domain.contacts`; here they are applied to the stored
contacts with compare and set, retried when another change came in between.
"""

from __future__ import annotations

from collections.abc import Callable

from billing_catalog.models import Contact
from billing_invoicing.domain.contacts import (
    ContactChange,
    add_contact,
    change_contact,
    contact_id,
    remove_contact,
)
from billing_invoicing.ports import ContactBook

ATTEMPTS = 5


class CustomerNotFoundError(LookupError):
    """The catalog has no such customer."""


async def list_contacts(book: ContactBook, customer_id: str) -> list[Contact]:
    """The customer's contacts, in the order they were added."""
    found = await book.contacts(customer_id)
    if found is None:
        msg = f"no customer {customer_id!r}"
        raise CustomerNotFoundError(msg)
    return found


async def _apply(
    book: ContactBook, customer_id: str, rule: Callable[[list[Contact]], list[Contact]]
) -> list[Contact]:
    for _ in range(ATTEMPTS):
        before = await list_contacts(book, customer_id)
        after = rule(before)
        if await book.replace(customer_id, before, after):
            return after
    msg = f"the contacts of {customer_id} keep changing; try again"
    raise RuntimeError(msg)


async def add(book: ContactBook, customer_id: str, new: Contact) -> Contact:
    """Add a contact; returns it as stored."""
    after = await _apply(book, customer_id, lambda cs: add_contact(cs, new))
    return next(c for c in after if contact_id(c) == contact_id(new))


async def change(book: ContactBook, customer_id: str, cid: str, what: ContactChange) -> Contact:
    """Change a contact's address, name, roles or primary flag; returns it as stored."""
    after = await _apply(book, customer_id, lambda cs: change_contact(cs, cid, what))
    wanted = (what.email or cid).casefold()
    return next(c for c in after if contact_id(c) == wanted)


async def remove(book: ContactBook, customer_id: str, cid: str) -> None:
    """Remove a contact."""
    await _apply(book, customer_id, lambda cs: remove_contact(cs, cid))
