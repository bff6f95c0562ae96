"""The delivery log: which emails notify meant to send, how far each got, and what came back.

MongoDB collection :data:`DELIVERIES`, one document per email, ``_id`` = its Message-ID. Every
write is a plain insert or a single-document ``findAndModify`` whose filter names the statuses
it may leave (so a ``sent`` record is never reopened), which FerretDB v1 (no transactions) does
the same way as MongoDB. :class:`~billing_notify.adapters.memory.InMemoryDeliveryLog` is the
fake with the same behaviour; the same contract test runs against both.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from billing_notify.domain.delivery import (
    CLAIMABLE,
    Delivery,
    DeliveryIntent,
    DeliveryStatus,
)
from billing_notify.ports import UnknownDeliveryError

DELIVERIES = "notify_deliveries"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


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
        delivered_to=tuple(doc.get("delivered_to") or ()),
        fallback_recipient=bool(doc.get("fallback_recipient", False)),
        retries=int(doc.get("retries", 0)),
        next_attempt_at=doc.get("next_attempt_at"),
        source_topic=doc.get("source_topic"),
        source_event=doc.get("source_event"),
        source_key=doc.get("source_key"),
        invoice_number=doc.get("invoice_number"),
    )


def _merged(before: Collection[str], added: Collection[str]) -> list[str]:
    seen = {a.casefold() for a in before}
    return [*before, *(a for a in added if a.casefold() not in seen)]


def _statuses(statuses: Collection[DeliveryStatus]) -> dict[str, Any]:
    return {"$in": [s.value for s in statuses]}


_TAKEN_WHEN_DUE = (DeliveryStatus.RETRYING, DeliveryStatus.PENDING, DeliveryStatus.SENDING)
"""What the re-driver takes once its time is due: scheduled retries, and attempts a re-driver
abandoned when its lease ran out (see ``claim_due_retry``)."""

_NOT_SETTLED = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SENDING,
    DeliveryStatus.RETRYING,
    DeliveryStatus.FAILED,
)


class MongoDeliveryLog:
    """The delivery log in MongoDB (or FerretDB)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], clock: Clock = utc_now) -> None:
        self._deliveries = db[DELIVERIES]
        self._clock = clock

    async def ensure_indexes(self) -> None:
        """Indexes for the retry scan and ``billing mail log --invoice``."""
        await self._deliveries.create_index([("status", 1), ("next_attempt_at", 1)])
        await self._deliveries.create_index([("invoice_id", 1)])
        await self._deliveries.create_index([("invoice_number", 1)])

    async def get(self, message_id: str) -> Delivery | None:
        """See :class:`DeliveryLog`."""
        doc = await self._deliveries.find_one({"_id": message_id})
        return None if doc is None else _delivery(doc)

    def _new(self, intent: DeliveryIntent, status: DeliveryStatus, attempts: int) -> dict[str, Any]:
        now = self._clock()
        return {
            "_id": intent.message_id,
            "kind": intent.kind,
            "invoice_id": intent.invoice_id,
            "invoice_number": intent.invoice_number,
            "customer_id": intent.customer_id,
            "recipients": list(intent.recipients),
            "delivered_to": [],
            "fallback_recipient": intent.fallback_recipient,
            "status": status.value,
            "attempts": attempts,
            "retries": 0,
            "smtp_response": None,
            "next_attempt_at": None,
            "source_topic": intent.source_topic,
            "source_event": intent.source_event,
            "source_key": intent.source_key,
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _intent_fields(intent: DeliveryIntent) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "recipients": list(intent.recipients),
            "fallback_recipient": intent.fallback_recipient,
        }
        if intent.source_event is not None:
            fields |= {
                "source_topic": intent.source_topic,
                "source_event": intent.source_event,
                "source_key": intent.source_key,
            }
        return fields

    async def claim(self, intent: DeliveryIntent, *, restart: bool = False) -> Delivery:
        """See :class:`DeliveryLog`."""
        return await self._insert_or_transition(
            self._new(intent, DeliveryStatus.PENDING, attempts=1),
            intent,
            {"status": DeliveryStatus.PENDING.value, **({"retries": 0} if restart else {})},
            inc={"attempts": 1},
        )

    async def defer(
        self, intent: DeliveryIntent, next_attempt_at: datetime, reason: str
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        doc = self._new(intent, DeliveryStatus.RETRYING, attempts=0)
        doc |= {"retries": 1, "next_attempt_at": next_attempt_at, "smtp_response": reason}
        return await self._insert_or_transition(
            doc,
            intent,
            {
                "status": DeliveryStatus.RETRYING.value,
                "next_attempt_at": next_attempt_at,
                "smtp_response": reason,
            },
            inc={"retries": 1},
        )

    async def _insert_or_transition(
        self,
        doc: dict[str, Any],
        intent: DeliveryIntent,
        fields: dict[str, Any],
        inc: dict[str, int],
    ) -> Delivery:
        """Insert ``doc``, the first record of the intent's email; if there is one already,
        set ``fields`` (and the intent's recipients and source) from a claimable status."""
        try:
            await self._deliveries.insert_one(doc)
        except DuplicateKeyError:
            pass  # tried before: moved below, if its status allows
        else:
            return _delivery(doc)
        return await self._transition(
            intent.message_id, CLAIMABLE, {**self._intent_fields(intent), **fields}, inc=inc
        )

    async def mark_sending(self, message_id: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        return await self._transition(
            message_id, (DeliveryStatus.PENDING,), {"status": DeliveryStatus.SENDING.value}
        )

    async def _with_delivered(
        self,
        message_id: str,
        fields: dict[str, Any],
        delivered_to: Collection[str],
        inc: dict[str, int] | None = None,
    ) -> Delivery:
        if delivered_to:
            # the usual case, nobody served before: one round trip (the merge is the list)
            first = await self._deliveries.find_one_and_update(
                {
                    "_id": message_id,
                    "status": _statuses(_NOT_SETTLED),
                    "delivered_to": {"$size": 0},
                },
                self._update({**fields, "delivered_to": _merged((), delivered_to)}, inc),
                return_document=ReturnDocument.AFTER,
            )
            if first is not None:
                return _delivery(first)
            current = await self.get(message_id)
            if current is None:
                raise UnknownDeliveryError(message_id)
            fields = {**fields, "delivered_to": _merged(current.delivered_to, delivered_to)}
        return await self._transition(message_id, _NOT_SETTLED, fields, inc=inc)

    async def mark_sent(
        self, message_id: str, smtp_response: str, delivered_to: Collection[str]
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        fields = {
            "status": DeliveryStatus.SENT.value,
            "smtp_response": smtp_response,
            "next_attempt_at": None,
        }
        return await self._with_delivered(message_id, fields, delivered_to)

    async def schedule_retry(
        self,
        message_id: str,
        smtp_response: str,
        next_attempt_at: datetime,
        delivered_to: Collection[str] = (),
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        fields = {
            "status": DeliveryStatus.RETRYING.value,
            "smtp_response": smtp_response,
            "next_attempt_at": next_attempt_at,
        }
        return await self._with_delivered(message_id, fields, delivered_to, inc={"retries": 1})

    async def mark_failed(
        self, message_id: str, smtp_response: str, delivered_to: Collection[str] = ()
    ) -> Delivery:
        """See :class:`DeliveryLog`."""
        fields = {
            "status": DeliveryStatus.FAILED.value,
            "smtp_response": smtp_response,
            "next_attempt_at": None,
        }
        return await self._with_delivered(message_id, fields, delivered_to)

    async def mark_uncertain(self, message_id: str, note: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        fields = {"status": DeliveryStatus.UNCERTAIN.value, "smtp_response": note}
        return await self._transition(message_id, (DeliveryStatus.SENDING,), fields)

    async def resend_uncertain(self, message_id: str, now: datetime, note: str) -> Delivery:
        """See :class:`DeliveryLog`."""
        fields = {
            "status": DeliveryStatus.RETRYING.value,
            "next_attempt_at": now,
            "smtp_response": note,
        }
        return await self._transition(message_id, (DeliveryStatus.UNCERTAIN,), fields)

    async def claim_due_retry(self, now: datetime, lease: timedelta) -> Delivery | None:
        """See :class:`DeliveryLog`."""
        doc = await self._deliveries.find_one_and_update(
            {"status": _statuses(_TAKEN_WHEN_DUE), "next_attempt_at": {"$lte": now}},
            {"$set": {"next_attempt_at": now + lease, "updated_at": self._clock()}},
            sort=[("next_attempt_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _delivery(doc)

    async def recent(self, *, invoice: str | None = None, limit: int = 100) -> list[Delivery]:
        """See :class:`DeliveryLog`."""
        query: dict[str, Any] = {}
        if invoice is not None:
            query = {"$or": [{"invoice_number": invoice}, {"invoice_id": invoice}]}
        cursor = self._deliveries.find(query).sort("updated_at", DESCENDING).limit(limit)
        return [_delivery(doc) async for doc in cursor]

    def _update(self, fields: dict[str, Any], inc: dict[str, int] | None) -> dict[str, Any]:
        update: dict[str, Any] = {"$set": {**fields, "updated_at": self._clock()}}
        if inc:
            update["$inc"] = inc
        return update

    async def _transition(
        self,
        message_id: str,
        allowed_from: Collection[DeliveryStatus],
        fields: dict[str, Any],
        inc: dict[str, int] | None = None,
    ) -> Delivery:
        """Set ``fields`` if the record's status is one of ``allowed_from``, in one atomic step;
        otherwise return the record unchanged."""
        doc = await self._deliveries.find_one_and_update(
            {"_id": message_id, "status": _statuses(allowed_from)},
            self._update(fields, inc),
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return _delivery(doc)
        existing = await self.get(message_id)
        if existing is None:
            raise UnknownDeliveryError(message_id)
        return existing
