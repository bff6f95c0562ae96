"""Use case: an operator sends an ``uncertain`` email again.

An email is ``uncertain`` when notify stopped (a crash, a lost connection) after the message
data went out and before the server's reply: the server may have delivered it, so notify never
sends it again on its own. When the recipient says it never arrived (or the server's log shows
it was not taken), ``billing mail resend`` hands it back to the re-driver, which sends it within
its poll interval, to the recipients not served before.
"""

from __future__ import annotations

from datetime import datetime

from billing_notify.domain.delivery import Delivery, DeliveryStatus
from billing_notify.ports import DeliveryLog


class ResendRefusedError(ValueError):
    """The email cannot be resent (unknown, or not uncertain): the message says why."""


async def resend_uncertain(
    deliveries: DeliveryLog, message_id: str, now: datetime, operator: str
) -> Delivery:
    """Schedule the uncertain email ``message_id`` to be sent again now; refused, naming why,
    for an unknown email or one in any other status."""
    record = await deliveries.get(message_id)
    if record is None:
        msg = f"no email {message_id} in the delivery log"
        raise ResendRefusedError(msg)
    if record.status is not DeliveryStatus.UNCERTAIN:
        hint = {
            DeliveryStatus.SENT: "it was sent",
            DeliveryStatus.FAILED: "a failed email goes again with `billing dlq replay` after "
            "the cause is fixed",
            DeliveryStatus.RETRYING: "it is already scheduled to be sent again",
        }.get(record.status, "it is being sent")
        msg = f"{message_id} is {record.status.value}, not uncertain: {hint}"
        raise ResendRefusedError(msg)
    note = f"resend asked by {operator} at {now.isoformat(timespec='seconds')}"
    return await deliveries.resend_uncertain(message_id, now, note)


async def uncertain_of_invoice(deliveries: DeliveryLog, invoice: str) -> list[Delivery]:
    """The uncertain emails about an invoice (its number or id)."""
    return [
        d
        for d in await deliveries.recent(invoice=invoice, limit=1000)
        if d.status is DeliveryStatus.UNCERTAIN
    ]
