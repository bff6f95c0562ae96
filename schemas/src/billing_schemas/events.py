"""Versioned event contracts: one envelope, one payload model per fact.

Every message on every topic is an :class:`Envelope` subclass. The envelope carries a stable
``event_id`` (the same fact always gets the same id, so consumers can deduplicate), the time the
fact occurred, its source service, the schema version and a correlation id that follows one bill
or one period close through every service. A breaking change to a payload is a new ``vN`` event
class on a new ``.vN`` topic; additive optional fields keep the version.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from billing_schemas.money import CurrencyCode, WireDecimal
from billing_schemas.topics import Topic

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(_Model):
    """What every event carries besides its payload."""

    event_id: str = Field(min_length=1, description="Stable id: the same fact, the same id.")
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime
    source: str = Field(min_length=1, description="The service (or system) that emitted it.")
    correlation_id: str = Field(min_length=1, description="Follows one flow across services.")

    @classmethod
    def create(
        cls,
        data: BaseModel,
        *,
        source: str,
        correlation_id: str,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Self:
        """Wrap a payload; ``event_id`` should be derived from the fact when it can be."""
        return cls.model_validate(
            {
                "event_id": event_id or str(uuid.uuid4()),
                "occurred_at": occurred_at or datetime.now(UTC),
                "source": source,
                "correlation_id": correlation_id,
                "data": data,
            }
        )


# --- usage -------------------------------------------------------------------------------


class ChargeCategory(StrEnum):
    """FOCUS ChargeCategory, lower-cased."""

    USAGE = "usage"
    PURCHASE = "purchase"
    TAX = "tax"
    CREDIT = "credit"
    ADJUSTMENT = "adjustment"


class LineType(StrEnum):
    """What kind of line a usage record is, across providers."""

    ON_DEMAND = "on_demand"
    COMMITMENT_COVERED = "commitment_covered"
    COMMITMENT_NEGATION = "commitment_negation"
    COMMITMENT_FEE = "commitment_fee"
    DISCOUNT = "discount"
    CREDIT = "credit"
    REFUND = "refund"
    TAX = "tax"
    ADJUSTMENT = "adjustment"
    OTHER = "other"


class SourceRef(_Model):
    """Where a record came from: the file and its row.

    In a CSV or Parquet file the row is numbered as a spreadsheet shows it (header = 1, first
    data row = 2); in a JSON-lines file it is the n-th object (first = 1).
    """

    file: str
    row: int = Field(ge=1)


class AppliedCredit(_Model):
    """A credit a provider applied to a line and already netted into its billed cost
    (e.g. a Google Cloud sustained-use or committed-use discount, a promotion)."""

    name: str | None = None
    type: str | None = Field(default=None, description="Provider's credit type, as written.")
    credit_id: str | None = None
    amount: WireDecimal = Field(description="Negative: what the credit took off the line.")


class UsageRecord(_Model):
    """One normalized line of usage or cost, whatever the provider's format."""

    record_id: str = Field(description="Deterministic: provider, account, period, line identity.")
    bill_id: str | None = None
    source_ref: SourceRef | None = None
    provider: str
    billing_account_id: str
    sub_account_id: str = Field(description="The cloud account that maps to a customer.")
    sub_account_name: str | None = None
    billing_period: str = Field(pattern=PERIOD_PATTERN, description="YYYY-MM")
    charge_period_start: AwareDatetime
    charge_period_end: AwareDatetime
    charge_category: ChargeCategory
    line_type: LineType
    service_name: str
    service_category: str | None = None
    sku_id: str | None = None
    sku_price_id: str | None = None
    description: str | None = None
    region: str | None = None
    resource_id: str | None = None
    commitment_id: str | None = None
    commitment_owner: Literal["payer", "account"] | None = None
    pricing_quantity: WireDecimal | None = None
    pricing_unit: str | None = None
    consumed_quantity: WireDecimal | None = None
    consumed_unit: str | None = None
    currency: CurrencyCode
    list_cost: WireDecimal | None = None
    on_demand_cost: WireDecimal | None = None
    billed_cost: WireDecimal
    effective_cost: WireDecimal | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    charge_class: Literal["correction"] | None = Field(
        default=None,
        description="'correction': this line corrects an earlier one (a provider's FOCUS "
        "ChargeClass, or a restated bill's reversal of a line it no longer holds).",
    )
    corrects_record_id: str | None = Field(
        default=None, description="The record a correction reverses or amends, when known."
    )
    credits: list[AppliedCredit] | None = Field(
        default=None,
        description="Credits already netted into billed_cost (billed = on-demand + credits).",
    )


class UsageRecorded(Envelope):
    """A usage record was accepted."""

    event_type: Literal["usage.recorded"] = "usage.recorded"
    schema_version: Literal[1] = 1
    data: UsageRecord


class RejectedRow(_Model):
    """An input row or event that was not accepted, and exactly why."""

    bill_id: str | None = None
    file: str | None = None
    row: int | None = None
    column: str | None = None
    reason: str
    raw: dict[str, str | None] = Field(default_factory=dict)


class UsageRejected(Envelope):
    """An input row or event was rejected; it is kept here, never dropped."""

    event_type: Literal["usage.rejected"] = "usage.rejected"
    schema_version: Literal[1] = 1
    data: RejectedRow


REJECTED_ROWS_CARRIED = 20
"""How many rejected rows a bill's summary carries: the first, for the operators' bill report
(the rest are on ``billing.usage.rejected.v1`` and in ``billing bills show``)."""


class BillSummary(_Model):
    """The figures of one loaded bill file."""

    bill_id: str
    file_name: str
    checksum_sha256: str
    format: str
    status: Literal["processed", "partially_rejected", "rejected", "failed"] = Field(
        description="processed: no row rejected; partially_rejected: some; rejected: every "
        "row (nothing accepted); failed: the load stopped on an error."
    )
    billing_periods: list[str]
    rows_read: int = Field(ge=0)
    rows_accepted: int = Field(ge=0)
    rows_rejected: int = Field(ge=0)
    billed_cost_totals: dict[str, WireDecimal] = Field(description="Per currency code.")
    scope: list[str] = Field(
        default_factory=list,
        description="What the bill covers: 'provider|billing account|period' for each.",
    )
    version: int = Field(default=1, ge=1, description="1, then +1 for each restatement.")
    restates: str | None = Field(default=None, description="The bill id this one supersedes.")
    rows_unchanged: int = Field(
        default=0, ge=0, description="Accepted rows equal to a line already published."
    )
    corrections: int = Field(
        default=0, ge=0, description="Reversals published for lines the restatement dropped."
    )
    first_rejected_rows: list[RejectedRow] = Field(
        default_factory=list,
        max_length=REJECTED_ROWS_CARRIED,
        description="The first rejected rows in row order (rows of the whole file first), at "
        f"most {REJECTED_ROWS_CARRIED}: what the operators' bill report lists.",
    )


class BillProcessed(Envelope):
    """A bill file was read to the end and every row published or rejected."""

    event_type: Literal["bill.processed"] = "bill.processed"
    schema_version: Literal[1] = 1
    data: BillSummary


# --- rating ------------------------------------------------------------------------------


class RatedCharge(_Model):
    """A usage record priced for a customer: what it cost us and what we charge."""

    charge_id: str = Field(description="Equal to the usage record id: one charge per record.")
    record_id: str
    customer_id: str
    provider: str
    sub_account_id: str
    billing_period: str = Field(pattern=PERIOD_PATTERN)
    charge_period_start: AwareDatetime
    charge_category: ChargeCategory
    line_type: LineType
    service_name: str
    sku_id: str | None = None
    description: str | None = None
    region: str | None = None
    quantity: WireDecimal | None = None
    unit: str | None = None
    cost: WireDecimal
    cost_currency: CurrencyCode
    price: WireDecimal
    currency: CurrencyCode = Field(description="The customer's invoicing currency.")
    margin: WireDecimal
    fx_rate: WireDecimal | None = Field(default=None, description="cost currency -> currency")
    fx_rate_date: date | None = Field(default=None, description="The date of the rate used.")
    rule: str = Field(description="The rule applied, readable: 'markup 12% (global)'.")
    rule_ids: list[str] = Field(
        default_factory=list, description="Ids of the price-list rules applied (none: no rule)."
    )
    basis: str | None = Field(
        default=None, description="What the rule applied to: 'billed cost', 'on-demand cost'."
    )
    basis_amount: WireDecimal | None = Field(
        default=None, description="That amount, in the cost currency, before conversion."
    )
    price_list_id: str
    price_list_version: int
    # what a customer's FOCUS dataset shows (docs/api.md, "FOCUS"); None on older charges
    charge_period_end: AwareDatetime | None = Field(
        default=None, description="Exclusive end of the usage record's charge period."
    )
    sub_account_name: str | None = Field(default=None, description="The provider's name for it.")
    service_category: str | None = Field(default=None, description="The record's, as written.")
    sku_price_id: str | None = Field(default=None, description="The record's, as written.")
    list_cost: WireDecimal | None = Field(
        default=None,
        description="The public on-demand price of the line (the record's on-demand or list "
        "cost), converted to the invoicing currency; None when the provider gave none; 0 on a "
        "correction (the public price did not change).",
    )
    charge_class: Literal["correction"] | None = Field(
        default=None,
        description="'correction': the charge corrects an earlier one (its usage record's "
        "charge class, or a re-rating's correction); invoices show it on its own line.",
    )


class ChargeRated(Envelope):
    """A usage record was rated for a customer."""

    event_type: Literal["charge.rated"] = "charge.rated"
    schema_version: Literal[1] = 1
    data: RatedCharge


class PeriodClose(_Model):
    """Where a customer's invoice for a period is closed in its stream of charges."""

    customer_id: str
    period: str = Field(pattern=PERIOD_PATTERN)
    issue_date: date


class PeriodClosing(Envelope):
    """A marker invoicing puts into the charge stream, keyed by customer like the charges.

    Kafka keeps one partition in order, so the consumer that meets this marker has stored every
    charge of the customer that was rated before the close was requested, and every charge after
    it goes onto the next invoice. That ordering, not a lock, makes the close exact without
    multi-document transactions.
    """

    event_type: Literal["period.closing"] = "period.closing"
    schema_version: Literal[1] = 1
    data: PeriodClose


ChargeStreamEvent = Annotated[ChargeRated | PeriodClosing, Field(discriminator="event_type")]
"""What the charge-rated topic carries: charges, and the period-close markers between them."""


# --- invoicing ---------------------------------------------------------------------------


class GenerateInvoicesCommand(_Model):
    """Close a billing period: finalize its invoices ("Generate invoices")."""

    period: str = Field(pattern=PERIOD_PATTERN)
    customer_id: str | None = None
    dry_run: bool = False
    requested_by: str = "operator"


class GenerateInvoices(Envelope):
    """Command: close a period."""

    event_type: Literal["invoices.generate"] = "invoices.generate"
    schema_version: Literal[1] = 1
    data: GenerateInvoicesCommand


class FinalizedInvoice(_Model):
    """An invoice that was given its number and will never change."""

    invoice_id: str
    invoice_number: str
    customer_id: str
    customer_name: str
    invoicing_entity_id: str
    period: str = Field(pattern=PERIOD_PATTERN)
    issue_date: date
    due_date: date
    currency: CurrencyCode
    subtotal: WireDecimal
    tax: WireDecimal
    total: WireDecimal
    outstanding: WireDecimal
    credit_applied: WireDecimal = Field(
        default=Decimal(0),
        description="Customer credit taken at finalization (``outstanding`` is already net of "
        "it); 0 when none, and in events published before the field existed.",
    )
    line_count: int = Field(ge=0)
    pdf_file_id: str = Field(description="Id of the stored PDF (billing_schemas.documents).")
    pdf_sha256: str


class InvoiceFinalized(Envelope):
    """An invoice was finalized and its PDF stored."""

    event_type: Literal["invoice.finalized"] = "invoice.finalized"
    schema_version: Literal[1] = 1
    data: FinalizedInvoice


class Payment(_Model):
    """Money received against an invoice."""

    payment_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    amount: WireDecimal
    currency: CurrencyCode
    method: str
    reference: str
    paid_on: date
    outstanding_after: WireDecimal


class PaymentRecorded(Envelope):
    """A payment was recorded against an invoice."""

    event_type: Literal["payment.recorded"] = "payment.recorded"
    schema_version: Literal[1] = 1
    data: Payment


class CreditNote(_Model):
    """A credit note: money given back against a finalized invoice (never an edit of it)."""

    credit_note_id: str
    credit_note_number: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    customer_name: str
    issue_date: date
    currency: CurrencyCode
    total: WireDecimal = Field(description="The amount credited, positive.")
    reason: str
    pdf_file_id: str | None = Field(default=None, description="Id of its stored PDF, if any.")
    pdf_sha256: str | None = None


class CreditNoteIssued(Envelope):
    """A credit note was issued against an invoice."""

    event_type: Literal["credit_note.issued"] = "credit_note.issued"
    schema_version: Literal[1] = 1
    data: CreditNote


class _InvoiceFacts(_Model):
    """What every event about a finalized invoice's settlement says of the invoice."""

    invoice_id: str
    invoice_number: str
    customer_id: str
    customer_name: str
    currency: CurrencyCode
    total: WireDecimal


class OverdueInvoice(_InvoiceFacts):
    """An invoice past its due date with money still owed, as of one day."""

    outstanding: WireDecimal
    due_date: date
    as_of: date
    days_overdue: int = Field(ge=1)


class InvoiceOverdue(Envelope):
    """An invoice is overdue (published by invoicing, typically once a day per such invoice).

    Which days earn a reminder email is notify's schedule, not the producer's.
    """

    event_type: Literal["invoice.overdue"] = "invoice.overdue"
    schema_version: Literal[1] = 1
    data: OverdueInvoice


class PaidInvoice(_InvoiceFacts):
    """An invoice with nothing left to pay: paid in full (credit notes count as paid)."""

    paid: WireDecimal = Field(description="Payments received against it (may exceed owed).")
    credited: WireDecimal = Field(description="Credit notes issued on it.")
    settled_by: str = Field(description="Id of the payment or credit note that settled it.")


class InvoicePaid(Envelope):
    """An invoice became paid (once per invoice: event id ``invoice-paid:<invoice id>``)."""

    event_type: Literal["invoice.paid"] = "invoice.paid"
    schema_version: Literal[1] = 1
    data: PaidInvoice


class VoidedInvoice(_InvoiceFacts):
    """An invoice cancelled by a credit note for everything not credited before."""

    credit_note_id: str
    credit_note_number: str
    voided_on: date
    reason: str


class InvoiceVoided(Envelope):
    """An invoice was voided (once per invoice: event id ``invoice-voided:<invoice id>``)."""

    event_type: Literal["invoice.voided"] = "invoice.voided"
    schema_version: Literal[1] = 1
    data: VoidedInvoice


# --- audit -------------------------------------------------------------------------------


class AuditEntry(_Model):
    """One action that changed money or access: who, when, what, and the state before/after.

    ``before`` and ``after`` hold the changed thing as JSON (amounts as decimal strings), or
    None where nothing existed before (a new contact) or nothing is left after (a removed one).
    """

    action: str = Field(
        min_length=1,
        description="What was done, '<thing>.<verb>': catalog.applied, "
        "price_list.versions_changed, invoices.close_requested, payment.recorded, "
        "credit_note.issued, invoice.voided, contact.added|changed|removed, user.*, token.*, "
        "charges.rerated.",
    )
    actor: str = Field(
        min_length=1,
        description="Who: 'user:<email>', 'token:<name>', or 'cli:<os user>'.",
    )
    subject: str = Field(min_length=1, description="What it was done to: 'invoice:ACME-2024-1'.")
    customer_id: str | None = None
    summary: str = Field(description="One line a person reads.")
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class AuditRecorded(Envelope):
    """An action that changed money or access (event id: the action's own stable id, so a
    retried action is recorded once)."""

    event_type: Literal["audit.recorded"] = "audit.recorded"
    schema_version: Literal[1] = 1
    data: AuditEntry


# --- reconciliation ----------------------------------------------------------------------


class ReconcileVerdict(_Model):
    """Whether a whole period reconciles, as one run of ``billing reconcile`` found: every
    line of its bills and every usage event on exactly one invoice, or each difference named."""

    period: str = Field(pattern=PERIOD_PATTERN)
    reconciles: bool = Field(description="No unexplained difference.")
    differences: int = Field(ge=0, description="Differences found, explained or not.")
    unexplained: int = Field(ge=0, description="Differences no known cause explains.")
    checked_at: AwareDatetime = Field(description="When the run compared the sources.")


class PeriodReconciled(Envelope):
    """``billing reconcile`` checked a whole period (a run narrowed to one customer says
    nothing of the period and publishes nothing). Event id ``period-reconciled:<period>:<checked
    at>``: a run is one fact; the newest ``checked_at`` of a period is its verdict."""

    event_type: Literal["period.reconciled"] = "period.reconciled"
    schema_version: Literal[1] = 1
    data: ReconcileVerdict


# --- notify ------------------------------------------------------------------------------


class Notification(_Model):
    """An email that left the system."""

    message_id: str
    kind: str
    customer_id: str | None = None
    invoice_id: str | None = None
    recipients: list[str]
    smtp_response: str


class NotificationSent(Envelope):
    """An email was accepted by the SMTP server."""

    event_type: Literal["notification.sent"] = "notification.sent"
    schema_version: Literal[1] = 1
    data: Notification


EVENTS_BY_TOPIC: dict[Topic, type[Envelope]] = {
    Topic.USAGE_RECORDED: UsageRecorded,
    Topic.USAGE_REJECTED: UsageRejected,
    Topic.BILL_PROCESSED: BillProcessed,
    Topic.CHARGE_RATED: ChargeRated,  # and PeriodClosing markers: see ChargeStreamEvent
    Topic.INVOICES_GENERATE: GenerateInvoices,
    Topic.INVOICE_FINALIZED: InvoiceFinalized,
    Topic.PAYMENT_RECORDED: PaymentRecorded,
    Topic.NOTIFICATION_SENT: NotificationSent,
    Topic.CREDIT_NOTE_ISSUED: CreditNoteIssued,
    Topic.INVOICE_OVERDUE: InvoiceOverdue,
    Topic.INVOICE_PAID: InvoicePaid,
    Topic.INVOICE_VOIDED: InvoiceVoided,
    Topic.AUDIT_RECORDED: AuditRecorded,
    Topic.PERIOD_RECONCILED: PeriodReconciled,
}
"""The event class each topic carries (``USAGE_SUBMITTED`` takes upstream CloudEvents)."""


def today_utc() -> date:
    """Today's date in UTC (invoice dates are UTC dates)."""
    return datetime.now(UTC).date()


class SubmittedUsage(_Model):
    """The ``data`` of a usage event published by an upstream system (metering, OpenStack...)."""

    provider: str
    billing_account_id: str | None = None
    sub_account_id: str
    service_name: str
    sku_id: str | None = None
    description: str | None = None
    region: str | None = None
    resource_id: str | None = None
    quantity: WireDecimal
    unit: str
    cost: WireDecimal
    currency: CurrencyCode
    charge_period_start: AwareDatetime
    charge_period_end: AwareDatetime
    tags: dict[str, str] = Field(default_factory=dict)


class UsageSubmitted(_Model):
    """A CloudEvents-style usage event from an upstream system (topic ``usage.submitted``).

    ``id`` and ``source`` together identify the event; ``time`` is when the usage happened.
    Neither is defaulted: an event without them is rejected.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: str = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: AwareDatetime
    data: SubmittedUsage
