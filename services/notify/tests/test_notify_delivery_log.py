"""The delivery log's contract, proven by the same assertions on the fake and on FerretDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from billing_notify.adapters.delivery_log import DELIVERIES, MongoDeliveryLog
from billing_notify.adapters.memory import InMemoryDeliveryLog
from billing_notify.domain.delivery import DeliveryIntent, DeliveryStatus
from billing_notify.ports import DeliveryLog, UnknownDeliveryError

if TYPE_CHECKING:
    from conftest import Infra


class Ticking:
    """A clock that moves one second per reading (whole ms: what the database keeps)."""

    def __init__(self) -> None:
        self.now = datetime(2024, 10, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


INTENT = DeliveryIntent(
    message_id="<invoice-finalized.abc@billing.invalid>",
    kind="invoice-finalized",
    invoice_id="inv-1",
    customer_id="acme",
    recipients=("ap@acme.example", "cfo@acme.example"),
)


@pytest.fixture(params=["in-memory", pytest.param("mongodb", marks=pytest.mark.integration)])
async def delivery_log(request: pytest.FixtureRequest) -> AsyncIterator[DeliveryLog]:
    if request.param == "in-memory":
        yield InMemoryDeliveryLog(clock=Ticking())
        return
    # Only this parameter needs the database: ask for the (synchronous) fixtures here, since
    # pytest-asyncio cannot hand an async fixture to getfixturevalue.
    infra: Infra = request.getfixturevalue("infra")
    namespace: str = request.getfixturevalue("namespace")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        yield MongoDeliveryLog(client[namespace], clock=Ticking())
        await client.drop_database(namespace)
    finally:
        await client.close()


async def test_an_intent_is_pending_until_sent(delivery_log: DeliveryLog) -> None:
    assert await delivery_log.get(INTENT.message_id) is None
    claimed = await delivery_log.claim(INTENT)
    assert (claimed.status, claimed.attempts, claimed.smtp_response) == (
        DeliveryStatus.PENDING,
        1,
        None,
    )
    assert claimed.recipients == INTENT.recipients
    assert (claimed.invoice_id, claimed.customer_id) == ("inv-1", "acme")

    sent = await delivery_log.mark_sent(
        INTENT.message_id, "250 Message accepted", INTENT.recipients
    )
    assert (sent.status, sent.smtp_response) == (DeliveryStatus.SENT, "250 Message accepted")
    assert sent.created_at == claimed.created_at
    assert sent.updated_at > claimed.updated_at
    assert await delivery_log.get(INTENT.message_id) == sent
    assert sent.notification().recipients == list(INTENT.recipients)


async def test_a_sent_email_is_never_claimed_again_nor_marked_failed(
    delivery_log: DeliveryLog,
) -> None:
    await delivery_log.claim(INTENT)
    sent = await delivery_log.mark_sent(INTENT.message_id, "250 OK", INTENT.recipients)
    assert await delivery_log.claim(INTENT) == sent
    assert await delivery_log.mark_failed(INTENT.message_id, "550 late") == sent
    assert await delivery_log.get(INTENT.message_id) == sent


async def test_pending_and_failed_emails_are_claimed_again_counting_attempts(
    delivery_log: DeliveryLog,
) -> None:
    await delivery_log.claim(INTENT)
    again = await delivery_log.claim(INTENT)  # a crash before the outcome was recorded
    assert (again.status, again.attempts) == (DeliveryStatus.PENDING, 2)
    failed = await delivery_log.mark_failed(INTENT.message_id, "550 no such user")
    assert (failed.status, failed.smtp_response) == (DeliveryStatus.FAILED, "550 no such user")
    fixed = DeliveryIntent(**{**INTENT.__dict__, "recipients": ("new@acme.example",)})
    retried = await delivery_log.claim(fixed)
    assert (retried.status, retried.attempts) == (DeliveryStatus.PENDING, 3)
    assert retried.recipients == ("new@acme.example",)


async def test_a_record_sending_when_the_process_died_can_only_become_uncertain(
    delivery_log: DeliveryLog,
) -> None:
    await delivery_log.claim(INTENT)
    sending = await delivery_log.mark_sending(INTENT.message_id)
    assert sending.status is DeliveryStatus.SENDING
    assert await delivery_log.claim(INTENT) == sending  # no new attempt from here
    uncertain = await delivery_log.mark_uncertain(INTENT.message_id, "crashed during DATA")
    assert (uncertain.status, uncertain.smtp_response) == (
        DeliveryStatus.UNCERTAIN,
        "crashed during DATA",
    )
    assert await delivery_log.claim(INTENT) == uncertain
    assert await delivery_log.mark_failed(INTENT.message_id, "550 late") == uncertain


async def test_retries_are_taken_when_due_once_per_lease(delivery_log: DeliveryLog) -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    await delivery_log.claim(INTENT)
    await delivery_log.mark_sending(INTENT.message_id)
    scheduled = await delivery_log.schedule_retry(
        INTENT.message_id, "452 mailbox full", t0, delivered_to=("ap@acme.example",)
    )
    assert (scheduled.status, scheduled.retries) == (DeliveryStatus.RETRYING, 1)
    assert scheduled.next_attempt_at == t0
    assert scheduled.delivered_to == ("ap@acme.example",)
    assert scheduled.undelivered == ("cfo@acme.example",)

    lease = timedelta(minutes=5)
    assert await delivery_log.claim_due_retry(t0 - timedelta(seconds=1), lease) is None
    taken = await delivery_log.claim_due_retry(t0, lease)
    assert taken is not None
    assert taken.message_id == INTENT.message_id
    assert taken.next_attempt_at == t0 + lease
    assert await delivery_log.claim_due_retry(t0 + timedelta(minutes=1), lease) is None

    again = await delivery_log.claim(INTENT)
    assert (again.status, again.attempts, again.retries) == (DeliveryStatus.PENDING, 2, 1)
    sent = await delivery_log.mark_sent(INTENT.message_id, "250 OK", ("cfo@acme.example",))
    assert sent.delivered_to == ("ap@acme.example", "cfo@acme.example")
    assert sent.next_attempt_at is None


async def test_a_retry_abandoned_mid_attempt_is_taken_again_after_its_lease(
    delivery_log: DeliveryLog,
) -> None:
    """A re-driver that took a retry and died (or lost the database) after claiming the attempt
    leaves the record ``pending`` (nothing sent) or ``sending`` (maybe sent): neither may stay so
    for ever. When the lease runs out the record is taken again: a pending one is attempted
    again, a sending one can then only become uncertain (found by the fault campaign: an
    invoice email stayed pending after notify was killed mid-retry, and was never sent)."""
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    lease = timedelta(minutes=5)
    await delivery_log.claim(INTENT)
    await delivery_log.schedule_retry(INTENT.message_id, "451 try later", t0)
    assert await delivery_log.claim_due_retry(t0, lease) is not None
    abandoned = await delivery_log.claim(INTENT)  # the re-driven attempt starts, then dies
    assert abandoned.status is DeliveryStatus.PENDING
    assert await delivery_log.claim_due_retry(t0 + lease - timedelta(seconds=1), lease) is None
    taken = await delivery_log.claim_due_retry(t0 + lease, lease)
    assert taken is not None
    assert (taken.status, taken.next_attempt_at) == (DeliveryStatus.PENDING, t0 + 2 * lease)

    await delivery_log.mark_sending(INTENT.message_id)  # died again, after the data went out
    assert await delivery_log.claim_due_retry(t0 + 2 * lease - timedelta(seconds=1), lease) is None
    taken = await delivery_log.claim_due_retry(t0 + 2 * lease, lease)
    assert taken is not None
    assert taken.status is DeliveryStatus.SENDING


async def test_only_an_uncertain_email_is_released_for_a_resend(
    delivery_log: DeliveryLog,
) -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    await delivery_log.claim(INTENT)
    assert (await delivery_log.resend_uncertain(INTENT.message_id, t0, "op")).status is (
        DeliveryStatus.PENDING
    )
    await delivery_log.mark_sending(INTENT.message_id)
    await delivery_log.mark_uncertain(INTENT.message_id, "no reply")
    released = await delivery_log.resend_uncertain(INTENT.message_id, t0, "resend asked by op")
    assert (released.status, released.next_attempt_at) == (DeliveryStatus.RETRYING, t0)
    assert released.smtp_response == "resend asked by op"
    taken = await delivery_log.claim_due_retry(t0, timedelta(minutes=5))
    assert taken is not None
    assert taken.message_id == INTENT.message_id
    again = await delivery_log.claim(INTENT)
    assert again.status is DeliveryStatus.PENDING
    sent = await delivery_log.mark_sent(INTENT.message_id, "250 OK", INTENT.recipients)
    assert (await delivery_log.resend_uncertain(INTENT.message_id, t0, "op")) == sent


async def test_a_deferred_email_keeps_its_source_event(delivery_log: DeliveryLog) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    intent = DeliveryIntent(
        **{**INTENT.__dict__, "source_topic": "t", "source_event": "{}", "source_key": "acme"}
    )
    deferred = await delivery_log.defer(intent, at, "not tried")
    assert (deferred.status, deferred.attempts, deferred.retries) == (
        DeliveryStatus.RETRYING,
        0,
        1,
    )
    assert (deferred.source_topic, deferred.source_event, deferred.source_key) == (
        "t",
        "{}",
        "acme",
    )
    failed = await delivery_log.mark_failed(INTENT.message_id, "gave up")
    restarted = await delivery_log.claim(intent, restart=True)
    assert failed.retries == 1
    assert (restarted.status, restarted.attempts, restarted.retries) == (
        DeliveryStatus.PENDING,
        1,
        0,
    )


async def test_recent_records_by_invoice_newest_first(delivery_log: DeliveryLog) -> None:
    other = DeliveryIntent(
        **{**INTENT.__dict__, "message_id": "<b@x>", "invoice_id": "inv-2", "invoice_number": "N-2"}
    )
    await delivery_log.claim(INTENT)
    await delivery_log.claim(other)
    assert [d.message_id for d in await delivery_log.recent()] == ["<b@x>", INTENT.message_id]
    assert [d.message_id for d in await delivery_log.recent(invoice="inv-1")] == [INTENT.message_id]
    assert [d.message_id for d in await delivery_log.recent(invoice="N-2")] == ["<b@x>"]
    assert len(await delivery_log.recent(limit=1)) == 1


async def test_outcomes_of_unknown_emails_are_refused(delivery_log: DeliveryLog) -> None:
    with pytest.raises(UnknownDeliveryError):
        await delivery_log.mark_sent("<nobody@billing.invalid>", "250 OK", ())


@pytest.mark.integration
async def test_the_stored_document_has_the_documented_fields(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    log = MongoDeliveryLog(mongo_db)
    await log.claim(INTENT)
    await log.mark_sent(INTENT.message_id, "250 OK", INTENT.recipients)
    doc = await mongo_db[DELIVERIES].find_one({"_id": INTENT.message_id})
    assert doc is not None
    assert set(doc) == {
        "_id",
        "kind",
        "invoice_id",
        "customer_id",
        "recipients",
        "status",
        "attempts",
        "smtp_response",
        "created_at",
        "updated_at",
        "delivered_to",
        "fallback_recipient",
        "retries",
        "next_attempt_at",
        "source_topic",
        "source_event",
        "source_key",
        "invoice_number",
    }
    assert (doc["status"], doc["attempts"], doc["recipients"]) == (
        "sent",
        1,
        ["ap@acme.example", "cfo@acme.example"],
    )


async def test_deferring_a_record_already_there_moves_it_only_from_a_claimable_status(
    delivery_log: DeliveryLog,
) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    await delivery_log.claim(INTENT)  # pending, attempt 1, no retry yet
    fewer = DeliveryIntent(
        **{**INTENT.__dict__, "recipients": ("ap@acme.example",), "source_event": "{}"}
    )
    deferred = await delivery_log.defer(fewer, at, "not tried")
    # the existing record moves: retries 0 + 1 = 1, attempts stay 1, the new recipients and source
    assert (deferred.status, deferred.attempts, deferred.retries) == (
        DeliveryStatus.RETRYING,
        1,
        1,
    )
    assert (deferred.next_attempt_at, deferred.smtp_response) == (at, "not tried")
    assert (deferred.recipients, deferred.source_event) == (("ap@acme.example",), "{}")

    await delivery_log.claim(INTENT)
    await delivery_log.mark_sending(INTENT.message_id)
    await delivery_log.mark_sent(INTENT.message_id, "250 OK", INTENT.recipients)
    untouched = await delivery_log.defer(INTENT, at, "not tried again")
    # sent is not claimable: nothing changes (still attempt 2, retries 1, the SMTP reply kept)
    assert (untouched.status, untouched.attempts, untouched.retries) == (
        DeliveryStatus.SENT,
        2,
        1,
    )
    assert untouched.smtp_response == "250 OK"
