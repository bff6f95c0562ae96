"""The contact rules (domain/contacts.py) through the use cases over the in-memory book."""

from __future__ import annotations

import pytest

from billing_catalog.models import Contact, ContactRole
from billing_invoicing.adapters.memory import InMemoryContactBook
from billing_invoicing.domain.contacts import ContactChange, ContactConflictError
from billing_invoicing.service import contacts
from billing_invoicing.service.contacts import CustomerNotFoundError

BILLING, TECH, DPO = ContactRole.BILLING, ContactRole.TECH, ContactRole.DPO


def book() -> InMemoryContactBook:
    return InMemoryContactBook(
        {
            "acme": [
                Contact(email="ap@acme.example", roles=[BILLING], primary=True),
                Contact(email="ops@acme.example", roles=[TECH]),
            ],
            "bare": [Contact(email="only@bare.example", roles=[TECH])],
        }
    )


async def test_the_billing_role_moves_only_by_adding_before_removing() -> None:
    b = book()
    with pytest.raises(ContactConflictError, match="no contact with the Billing role") as exc:
        await contacts.change(b, "acme", "ap@acme.example", ContactChange(roles=[TECH]))
    assert exc.value.field == "roles"
    with pytest.raises(ContactConflictError, match="no contact with the Billing role"):
        await contacts.remove(b, "acme", "AP@acme.example")  # ids ignore case

    await contacts.change(b, "acme", "ops@acme.example", ContactChange(roles=[DPO, BILLING, DPO]))
    await contacts.remove(b, "acme", "ap@acme.example")
    [left] = await contacts.list_contacts(b, "acme")
    assert (str(left.email), left.roles) == ("ops@acme.example", [BILLING, DPO])


async def test_a_customer_without_a_billing_contact_may_still_change_its_contacts() -> None:
    b = book()
    # nothing to keep: notify falls back to the primary or first contact (notify's rule)
    changed = await contacts.change(b, "bare", "only@bare.example", ContactChange(name="Only"))
    assert changed.name == "Only"


async def test_one_primary_and_one_address_per_contact() -> None:
    b = book()
    await contacts.add(b, "acme", Contact(email="new@acme.example", primary=True))
    assert [c.primary for c in await contacts.list_contacts(b, "acme")] == [False, False, True]
    with pytest.raises(ContactConflictError, match="already has the address") as exc:
        await contacts.change(
            b, "acme", "new@acme.example", ContactChange(email="OPS@acme.example")
        )
    assert exc.value.field == "email"
    with pytest.raises(CustomerNotFoundError):
        await contacts.add(b, "nobody", Contact(email="x@y.example"))


async def test_a_change_made_meanwhile_is_not_lost() -> None:
    b = book()
    real_replace = b.replace
    raced = False

    async def replace_after_a_rival(
        customer_id: str, before: list[Contact], after: list[Contact]
    ) -> bool:
        nonlocal raced
        if not raced:  # another panel adds a contact between our read and our write
            raced = True
            rival = [*before, Contact(email="rival@acme.example")]
            assert await real_replace(customer_id, before, rival)
        return await real_replace(customer_id, before, after)

    b.replace = replace_after_a_rival  # type: ignore[method-assign]
    await contacts.add(b, "acme", Contact(email="mine@acme.example"))
    emails = [str(c.email) for c in await contacts.list_contacts(b, "acme")]
    assert emails == [
        "ap@acme.example",
        "ops@acme.example",
        "rival@acme.example",
        "mine@acme.example",
    ]
