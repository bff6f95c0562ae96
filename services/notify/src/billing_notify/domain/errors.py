"""Why a notification cannot be sent: errors that retrying the same input cannot fix.

Every error here is *permanent*: the consumer dead-letters the event that caused it (fix the
catalog or the document, then replay the event). Transient trouble (an SMTP server that is
down, a database that does not answer) is not a :class:`NotificationError` and makes the
consumer retry instead.
"""

from __future__ import annotations


class NotificationError(Exception):
    """A notification that cannot be sent as its input stands."""


class NoRecipientError(NotificationError):
    """The customer has no contact to write to."""


class InvalidAddressError(NotificationError):
    """An email address (or mailbox such as ``Name <addr>``) that is not valid."""


class UnsafeHeaderError(NotificationError):
    """A header value that would break out of its header (a line break in it: CR, LF, or any
    other ``str.splitlines()`` knows, such as U+2028)."""


class UnknownCustomerError(NotificationError):
    """The invoice names a customer that the catalog does not have (or cannot read)."""


class InvoicePdfMissingError(NotificationError):
    """The invoice's PDF is not stored under the id the event carries."""


class InvoicePdfMismatchError(NotificationError):
    """The stored PDF is not the document that was finalized (checksum differs)."""
