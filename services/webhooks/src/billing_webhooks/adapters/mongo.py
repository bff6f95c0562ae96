"""MongoDB side of webhooks: endpoints, the delivery queue, the delivery and attempt log.

Four collections, written the way FerretDB over SQLite stays fast (no filter there is answered
from an index, so nothing on the sending path reads a growing collection):

* ``webhooks_endpoints``: small, read whole;
* ``webhooks_queue``: only the deliveries not finished yet (the dispatcher reads it whole every
  poll); a finished delivery is deleted from it;
* ``webhooks_deliveries``: every delivery, inserted once when queued (its ``_id`` is the
  deduplication: a message consumed again is a duplicate key) and updated after each attempt;
* ``webhooks_attempts``: every attempt, insert only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from billing_webhooks.domain.deliveries import Attempt, Delivery, DeliveryState
from billing_webhooks.domain.endpoints import Endpoint
from billing_webhooks.domain.messages import EventKind

Doc = dict[str, Any]

ENDPOINTS = "webhooks_endpoints"
QUEUE = "webhooks_queue"
DELIVERIES = "webhooks_deliveries"
ATTEMPTS = "webhooks_attempts"
DUPLICATE_KEY = 11000
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)


def endpoint_doc(endpoint: Endpoint) -> Doc:
    """An endpoint as stored."""
    return {
        "_id": endpoint.endpoint_id,
        "url": endpoint.url,
        "secret": endpoint.secret,
        "customer_id": endpoint.customer_id,
        "event_kinds": sorted(k.value for k in endpoint.event_kinds),
        "description": endpoint.description,
        "created_at": endpoint.created_at,
        "created_by": endpoint.created_by,
        "enabled": endpoint.enabled,
        "disabled_at": endpoint.disabled_at,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since,
    }


def endpoint_of(doc: Doc) -> Endpoint:
    """The endpoint a stored document holds."""
    return Endpoint(
        endpoint_id=doc["_id"],
        url=doc["url"],
        secret=doc["secret"],
        customer_id=doc.get("customer_id"),
        event_kinds=frozenset(EventKind(k) for k in doc.get("event_kinds", [])),
        description=doc.get("description", ""),
        created_at=doc["created_at"],
        created_by=doc.get("created_by", ""),
        enabled=doc.get("enabled", True),
        disabled_at=doc.get("disabled_at"),
        disabled_reason=doc.get("disabled_reason"),
        failing_since=doc.get("failing_since"),
    )


class MongoEndpoints:
    """:class:`~billing_webhooks.ports.EndpointStore` over MongoDB."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._endpoints = db[ENDPOINTS]

    async def add(self, endpoint: Endpoint) -> None:
        """See the port."""
        await self._endpoints.insert_one(endpoint_doc(endpoint))

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """See the port."""
        doc = await self._endpoints.find_one({"_id": endpoint_id})
        return None if doc is None else endpoint_of(doc)

    async def all(self, customer_id: str | None = None) -> list[Endpoint]:
        """See the port."""
        query: Doc = {} if customer_id is None else {"customer_id": customer_id}
        docs = [d async for d in self._endpoints.find(query)]
        return sorted((endpoint_of(d) for d in docs), key=lambda e: (e.created_at, e.endpoint_id))

    async def save(self, endpoint: Endpoint) -> None:
        """See the port."""
        await self._endpoints.replace_one({"_id": endpoint.endpoint_id}, endpoint_doc(endpoint))


def delivery_doc(delivery: Delivery) -> Doc:
    """A delivery as stored (in the queue and in the log alike)."""
    return {
        "_id": delivery.delivery_id,
        "endpoint_id": delivery.endpoint_id,
        "customer_id": delivery.customer_id,
        "message_id": delivery.message_id,
        "kind": delivery.kind.value,
        "order_key": delivery.order_key,
        "occurred_at": delivery.occurred_at,
        "body": delivery.body,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_duration_ms": delivery.last_duration_ms,
        "finished_at": delivery.finished_at,
    }


def delivery_of(doc: Doc) -> Delivery:
    """The delivery a stored document holds."""
    return Delivery(
        delivery_id=doc["_id"],
        endpoint_id=doc["endpoint_id"],
        customer_id=doc.get("customer_id"),
        message_id=doc["message_id"],
        kind=EventKind(doc["kind"]),
        order_key=doc["order_key"],
        occurred_at=doc["occurred_at"],
        body=doc["body"],
        created_at=doc["created_at"],
        next_attempt_at=doc["next_attempt_at"],
        state=DeliveryState(doc["state"]),
        attempts=doc.get("attempts", 0),
        last_status=doc.get("last_status"),
        last_error=doc.get("last_error"),
        last_duration_ms=doc.get("last_duration_ms"),
        finished_at=doc.get("finished_at"),
    )


def attempt_doc(attempt: Attempt) -> Doc:
    """An attempt as stored."""
    return {
        "_id": f"{attempt.delivery_id}#{attempt.number}",
        "delivery_id": attempt.delivery_id,
        "endpoint_id": attempt.endpoint_id,
        "message_id": attempt.message_id,
        "number": attempt.number,
        "at": attempt.at,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }


def attempt_of(doc: Doc) -> Attempt:
    """The attempt a stored document holds."""
    return Attempt(
        delivery_id=doc["delivery_id"],
        endpoint_id=doc["endpoint_id"],
        message_id=doc["message_id"],
        number=doc["number"],
        at=doc["at"],
        status_code=doc.get("status_code"),
        error=doc.get("error"),
        duration_ms=doc["duration_ms"],
    )


class MongoDeliveries:
    """:class:`~billing_webhooks.ports.DeliveryStore` over MongoDB."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._queue = db[QUEUE]
        self._log = db[DELIVERIES]
        self._attempts = db[ATTEMPTS]

    async def ensure_indexes(self) -> None:
        """Indexes for the operators' reads of the log (real MongoDB uses them)."""
        await self._log.create_index([("endpoint_id", ASCENDING), ("created_at", DESCENDING)])
        await self._attempts.create_index([("delivery_id", ASCENDING), ("number", ASCENDING)])

    async def enqueue(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """See the port. The log's insert decides what is new; a delivery logged as pending
        but missing from the queue (a crash between the two inserts) is queued again."""
        if not deliveries:
            return []
        docs = [delivery_doc(d) for d in deliveries]
        seen: set[int] = set()
        try:
            await self._log.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            seen = {e["index"] for e in errors}
        new = [d for i, d in enumerate(deliveries) if i not in seen]
        requeue: list[Delivery] = []
        for index in sorted(seen):
            stored = await self._log.find_one({"_id": docs[index]["_id"]}, {"state": 1})
            if stored is not None and stored["state"] == DeliveryState.PENDING.value:
                requeue.append(deliveries[index])
        await self._insert_queue(
            [delivery_doc(d) | {"lease_until": NO_LEASE} for d in [*new, *requeue]]
        )
        return new

    async def _insert_queue(self, docs: list[Doc]) -> None:
        if not docs:
            return
        try:
            await self._queue.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def pending(self) -> list[Delivery]:
        """See the port."""
        return [delivery_of(d) async for d in self._queue.find({})]

    async def claim(self, delivery: Delivery, now: datetime, until: datetime) -> bool:
        """See the port: a compare-and-set on the lease read just before."""
        doc = await self._queue.find_one({"_id": delivery.delivery_id}, {"lease_until": 1})
        if doc is None or doc["lease_until"] > now:
            return False
        result = await self._queue.update_one(
            {"_id": delivery.delivery_id, "lease_until": doc["lease_until"]},
            {"$set": {"lease_until": until}},
        )
        return result.modified_count == 1

    async def record(self, delivery: Delivery, attempt: Attempt | None) -> None:
        """See the port. The attempt first, then the log, then the queue: a crash between
        them leaves the delivery queued, and it is tried again (at least once)."""
        if attempt is not None:
            await self._attempts.insert_one(attempt_doc(attempt))
        doc = delivery_doc(delivery)
        await self._log.replace_one({"_id": delivery.delivery_id}, doc)
        if delivery.state is DeliveryState.PENDING:
            await self._queue.replace_one(
                {"_id": delivery.delivery_id}, doc | {"lease_until": NO_LEASE}
            )
        else:
            await self._queue.delete_one({"_id": delivery.delivery_id})

    async def deliveries(
        self,
        *,
        endpoint_id: str | None = None,
        customer_id: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """See the port."""
        query: Doc = {}
        if endpoint_id is not None:
            query["endpoint_id"] = endpoint_id
        if customer_id is not None:
            query["customer_id"] = customer_id
        cursor = self._log.find(query).sort([("created_at", DESCENDING), ("_id", ASCENDING)])
        return [delivery_of(d) async for d in cursor.limit(limit)]

    async def get(self, delivery_id: str) -> Delivery | None:
        """See the port."""
        doc = await self._log.find_one({"_id": delivery_id})
        return None if doc is None else delivery_of(doc)

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        """See the port."""
        cursor = self._attempts.find({"delivery_id": delivery_id}).sort("number", ASCENDING)
        return [attempt_of(d) async for d in cursor]
