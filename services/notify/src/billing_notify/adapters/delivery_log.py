"""The delivery log: which emails notify meant to send and which the SMTP server accepted.

MongoDB collection :data:`DELIVERIES`, one document per email, ``_id`` = its Message-ID. Only
plain inserts, finds and ``findAndModify`` without upsert are used, which FerretDB v1 (no
transactions) does the same way as MongoDB. :class:`InMemoryDeliveryLog` is the fake with the
same behaviour; the same contract test runs against both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billing_notify.domain.delivery import Delivery, DeliveryIntent, DeliveryStatus

DELIVERIES = "notify_deliveries"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class DeliveryLog(Protocol):
    """Port: record an intent before sending, then the outcome."""

    async def get(self, message_id: str) -> Delivery | None:
        """The record of this Message-ID, or None."""
        ...

    async def claim(self, intent: DeliveryIntent) -> Delivery:
        """Record the intent to send as ``pending`` (one more attempt) and return the record.

        If the email was already sent, nothing changes and the ``sent`` record is returned:
        the caller must not send it again.
        """
        ...

    async def mark_sent(self, message_id: str, smtp_response: str) -> Delivery:
        """The SMTP server accepted the email: record ``sent`` with its response."""
        ...

    async def mark_failed(self, message_id: str, smtp_response: str) -> Delivery:
        """The SMTP server refused the email for good: record ``failed`` (never undoes ``sent``)."""
        ...


def _delivery(doc: dict[str, Any]) -> Delivery:
    return Delivery(
        message_id=doc["_id"],
        kind=doc["kind"],
        invoice_id=doc.get("invoice_id"),
        customer_id=doc.get("customer_id"),
        recipients=tuple(doc["recipients"]),
        status=DeliveryStatus(doc["status"]),
        attempts=int(doc["attempts"]),
        smtp_response=doc.get("smtp_response"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


class UnknownDeliveryError(LookupError):
    """No delivery-log record has this Message-ID."""


class MongoDeliveryLog:
    """The delivery log in MongoDB (or FerretDB)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], clock: Clock = utc_now) -> None:
        self._deliveries = db[DELIVERIES]
        self._clock = clock

    async def get(self, message_id: str) -> Delivery | None:
        """See :class:`DeliveryLog`."""
        doc = await self._deliveries.find_one({"_id": message_id})
        return None if doc is None else _delivery(doc)

    async def claim(self, intent: DeliveryIntent) -> Delivery:
        """See :class:`DeliveryLog`."""
        now = self._clock()
        doc: dict[str, Any] = {
            "_id": intent.message_id,
            "kind": intent.kind,
            "invoice_id": intent.invoice_id,
            "customer_id": intent.customer_id,
            "recipients": list(intent.recipients),
            "status": DeliveryStatus.PENDING.value,
            "attempts": 1,
            "smtp_response": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._deliveries.insert_one(doc)
        except DuplicateKeyError:
            pass  # tried before: count another attempt below, unless it was sent
        else:
            return _delivery(doc)
        # The status filter makes "not sent yet -> pending again" one atomic step, so a record
        # that another consumer marked sent in the meantime is never reopened.
        updated = await self._deliveries.find_one_and_update(
            {"_id": intent.message_id, "status": {"$ne": DeliveryStatus.SENT.value}},
            {
                "$set": {
                    "status": DeliveryStatus.PENDING.value,
                    "recipients": list(intent.recipients),
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None:
            return _delivery(updated)
        existing = await self.get(intent.message_id)
        if existing is None:  # deleted between the two statements: an operator's doing
            raise UnknownDeliveryError(intent.message_id)
        return existing

    async def mark_sent(self, message_id: str, smtp_response: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return await self._set_status(message_id, DeliveryStatus.SENT, smtp_response, {})

    async def mark_failed(self, message_id: str, smtp_response: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return await self._set_status(
            message_id,
            DeliveryStatus.FAILED,
            smtp_response,
            {"status": {"$ne": DeliveryStatus.SENT.value}},
        )

    async def _set_status(
        self, message_id: str, status: DeliveryStatus, response: str, guard: dict[str, Any]
    ) -> Delivery:
        doc = await self._deliveries.find_one_and_update(
            {"_id": message_id, **guard},
            {
                "$set": {
                    "status": status.value,
                    "smtp_response": response,
                    "updated_at": self._clock(),
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            existing = await self.get(message_id)
            if existing is None:
                raise UnknownDeliveryError(message_id)
            return existing  # the guard kept a sent record sent
        return _delivery(doc)


class InMemoryDeliveryLog:
    """Fake of the port for unit tests: the same rules, in a dict."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.records: dict[str, Delivery] = {}
        self._clock = clock

    async def get(self, message_id: str) -> Delivery | None:
        """See :class:`DeliveryLog`."""
        return self.records.get(message_id)

    async def claim(self, intent: DeliveryIntent) -> Delivery:
        """See :class:`DeliveryLog`."""
        now = self._clock()
        existing = self.records.get(intent.message_id)
        if existing is None:
            record = Delivery(
                message_id=intent.message_id,
                kind=intent.kind,
                invoice_id=intent.invoice_id,
                customer_id=intent.customer_id,
                recipients=intent.recipients,
                status=DeliveryStatus.PENDING,
                attempts=1,
                smtp_response=None,
                created_at=now,
                updated_at=now,
            )
        elif existing.sent:
            return existing
        else:
            record = replace(
                existing,
                status=DeliveryStatus.PENDING,
                recipients=intent.recipients,
                attempts=existing.attempts + 1,
                updated_at=now,
            )
        self.records[intent.message_id] = record
        return record

    async def mark_sent(self, message_id: str, smtp_response: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return self._set(message_id, DeliveryStatus.SENT, smtp_response)

    async def mark_failed(self, message_id: str, smtp_response: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return self._set(message_id, DeliveryStatus.FAILED, smtp_response)

    def _set(self, message_id: str, status: DeliveryStatus, response: str) -> Delivery:
        existing = self.records.get(message_id)
        if existing is None:
            raise UnknownDeliveryError(message_id)
        if existing.sent and status is not DeliveryStatus.SENT:
            return existing
        record = replace(existing, status=status, smtp_response=response, updated_at=self._clock())
        self.records[message_id] = record
        return record
