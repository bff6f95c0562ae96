"""``billing mail resend``'s use case: only an uncertain email goes again, on the re-driver's next
turn; anything else is refused with the reason and what to do instead."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_notify.adapters.memory import InMemoryDeliveryLog
from billing_notify.domain.delivery import DeliveryIntent, DeliveryStatus
from billing_notify.service.resend import (
    ResendRefusedError,
    resend_uncertain,
    uncertain_of_invoice,
)

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def intent(n: int) -> DeliveryIntent:
    return DeliveryIntent(
        message_id=f"<invoice-finalized.{n}@billing.invalid>",
        kind="invoice-finalized",
        invoice_id=f"acme:2024-0{n}",
        customer_id="acme",
        recipients=("ap@acme.example",),
        invoice_number=f"CCR-2024-00000{n}",
    )


async def test_an_uncertain_email_is_scheduled_now_and_others_are_refused() -> None:
    log = InMemoryDeliveryLog()
    for n in (1, 2):
        await log.claim(intent(n))
        await log.mark_sending(intent(n).message_id)
    await log.mark_uncertain(intent(1).message_id, "no reply after the data")
    await log.mark_sent(intent(2).message_id, "250 OK", ("ap@acme.example",))

    assert [d.message_id for d in await uncertain_of_invoice(log, "CCR-2024-000001")] == [
        intent(1).message_id
    ]
    resent = await resend_uncertain(log, intent(1).message_id, NOW, "cli:ops")
    assert (resent.status, resent.next_attempt_at) == (DeliveryStatus.RETRYING, NOW)
    assert resent.smtp_response == "resend asked by cli:ops at 2030-01-01T12:00:00+00:00"
    assert await log.claim_due_retry(NOW, NOW - NOW) is not None

    with pytest.raises(ResendRefusedError, match="is sent, not uncertain: it was sent"):
        await resend_uncertain(log, intent(2).message_id, NOW, "cli:ops")
    with pytest.raises(ResendRefusedError, match="is retrying, not uncertain: it is already"):
        await resend_uncertain(log, intent(1).message_id, NOW, "cli:ops")
    with pytest.raises(ResendRefusedError, match="no email <x@y> in the delivery log"):
        await resend_uncertain(log, "<x@y>", NOW, "cli:ops")
