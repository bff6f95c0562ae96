"""Use case: tell the operators a bill was processed: counts, totals, first rejected rows."""

from __future__ import annotations

from billing_notify.domain.bill_report import bill_message_id, bill_report_view
from billing_notify.domain.messages import (
    DEFAULT_LANGUAGE,
    MessageKind,
    OutgoingEmail,
    compose_email,
    render,
)
from billing_notify.domain.recipients import Recipients
from billing_notify.service.deliver import (
    DeliveryOutcome,
    MailPolicy,
    Mode,
    NotifyPorts,
    Source,
    deliver,
    skipped,
)
from billing_schemas.events import BillProcessed
from billing_schemas.topics import Topic


async def notify_bill_processed(
    event: BillProcessed, ports: NotifyPorts, policy: MailPolicy, mode: Mode = Mode.SEND
) -> DeliveryOutcome:
    """Email the operators (settings) the bill's figures, its first rejected rows (carried
    by the event, ``BillSummary.first_rejected_rows``) and whether its periods reconcile (the
    last ``billing reconcile`` verdicts); skipped when no operator address is configured."""
    summary = event.data
    if not policy.operators:
        return skipped(f"bill {summary.bill_id} processed: no operator address configured")
    message_id = bill_message_id(summary)
    kind = MessageKind.BILL_PROCESSED

    async def build() -> OutgoingEmail:
        verdicts = await ports.reconciliations.verdicts(summary.billing_periods)
        view = bill_report_view(
            summary,
            summary.first_rejected_rows,
            limit=policy.rejected_rows_listed,
            verdicts=verdicts,
            processed_at=event.occurred_at,
        )
        recipients = Recipients(policy.operators)
        message = compose_email(
            render(kind, DEFAULT_LANGUAGE, view),
            sender=policy.sender,
            recipients=recipients,
            message_id=message_id,
            sent_at=event.occurred_at,
        )
        return OutgoingEmail(kind, message_id, message, recipients)

    source = Source(Topic.BILL_PROCESSED.value, summary.bill_id, event.model_dump_json())
    return await deliver(message_id, build, source, ports, policy, mode=mode)
