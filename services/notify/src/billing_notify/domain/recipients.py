"""Who an email goes to, and what a valid mailbox is: pure, no I/O.

Contact data comes from the catalog, which people edit: every address is validated again here
and every display name is checked for line breaks, so that nothing in the catalog can add a
header (``Bcc:``) or a recipient to an email.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email

from billing_catalog.models import Contact, Customer, InvoicingEntity
from billing_notify.domain.errors import InvalidAddressError, NoRecipientError, UnsafeHeaderError

_MAILBOX = re.compile(r"\s*(?:(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]+)>|(?P<bare>[^<>\s]+))\s*")


def has_line_break(value: str) -> bool:
    """Whether ``value`` holds any line break ``str.splitlines()`` knows: CR, LF, and also
    \\v, \\f, the file/group/record separators, NEL (U+0085), U+2028 and U+2029, all of
    which Python's email package refuses in a header (``ValueError``)."""
    return len(f"_{value}_".splitlines()) > 1


def check_header_value(header: str, value: str) -> str:
    """Return ``value`` unchanged if it is safe in a header; refuse any line break.

    A line break in a header value would end the header and start another one (header
    injection), or make the email package refuse the whole message, so any value containing
    one (:func:`has_line_break`) is refused rather than cleaned.
    """
    if has_line_break(value):
        msg = f"{header} value {value!r} contains a line break: refused (header injection)"
        raise UnsafeHeaderError(msg)
    return value


def normalize_address(address: str) -> str:
    """The address as it is sent: validated syntax, domain lower-cased (no DNS lookup)."""
    check_header_value("address", address)
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        msg = f"{address!r} is not a valid email address: {exc}"
        raise InvalidAddressError(msg) from None


@dataclass(frozen=True)
class Mailbox:
    """A validated address with an optional display name (``Dana Whitfield <cfo@...>``)."""

    address: str
    name: str | None = None

    @classmethod
    def of(cls, address: str, name: str | None = None) -> Mailbox:
        """Validate the address and the name; an empty name counts as none."""
        if name is not None:
            check_header_value("display name", name)
        display = (name or "").strip()
        return cls(address=normalize_address(address), name=display or None)


def parse_mailbox(text: str) -> Mailbox:
    """Parse ``Name <address>``, ``"Name, Inc." <address>`` or a bare address; validate it."""
    check_header_value("mailbox", text)
    match = _MAILBOX.fullmatch(text)
    if match is None:
        msg = f"{text!r} is not a mailbox: write 'Name <address>' or an address"
        raise InvalidAddressError(msg)
    if match["bare"] is not None:
        return Mailbox.of(match["bare"])
    name = match["name"].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return Mailbox.of(match["addr"].strip(), name)


@dataclass(frozen=True)
class Recipients:
    """Who an invoice email goes to; ``fallback`` when no contact holds the Billing role."""

    mailboxes: tuple[Mailbox, ...]
    fallback: bool = False

    @property
    def addresses(self) -> list[str]:
        """The envelope recipients (addresses only)."""
        return [m.address for m in self.mailboxes]


def choose_recipients(customer: Customer) -> Recipients:
    """Invoices go to every contact holding the Billing role, each address once.

    A customer without a Billing contact still gets its invoice: it goes to the primary
    contact, or to the first contact if none is primary, with ``fallback`` set so that the
    email can say why the reader receives it. A customer without any contact cannot be
    written to: :class:`NoRecipientError`.
    """
    chosen: list[Contact] = customer.billing_contacts()
    fallback = not chosen
    if fallback:
        if not customer.contacts:
            msg = f"customer {customer.id!r} has no contact to send the invoice to"
            raise NoRecipientError(msg)
        primary = [c for c in customer.contacts if c.primary]
        chosen = [(primary or customer.contacts)[0]]
    mailboxes: dict[str, Mailbox] = {}
    for contact in chosen:
        mailbox = Mailbox.of(str(contact.email), contact.name)
        # Servers treat local parts case-insensitively in practice: one copy per mailbox.
        mailboxes.setdefault(mailbox.address.casefold(), mailbox)
    return Recipients(mailboxes=tuple(mailboxes.values()), fallback=fallback)


class EntitySender(StrEnum):
    """How a customer email names the invoicing entity that writes it (a notify setting)."""

    FROM = "from"
    """From: the entity's name and address (the relay accepts it as sender)."""
    REPLY_TO = "reply_to"
    """From: the configured sender (a relay that requires its own); Reply-To: the entity."""


@dataclass(frozen=True)
class Sender:
    """The From and Reply-To of an email."""

    from_: Mailbox
    reply_to: Mailbox | None = None


def entity_mailbox(entity: InvoicingEntity) -> Mailbox:
    """The entity's name and email address as a mailbox (validated like any catalog data)."""
    return Mailbox.of(str(entity.email), entity.name)


def customer_email_sender(
    entity: InvoicingEntity | None, configured: Mailbox, mode: EntitySender
) -> Sender:
    """Who a customer email is from: the invoicing entity that bills the customer, as From or,
    where the relay requires its own sender, as Reply-To beside the ``configured`` sender (the
    customer's reply then reaches the entity either way). Without an entity (not in the
    catalog), the configured sender alone."""
    if entity is None:
        return Sender(configured)
    mailbox = entity_mailbox(entity)
    if mode is EntitySender.REPLY_TO:
        return Sender(configured, reply_to=mailbox)
    return Sender(mailbox)
