"""The invoice aggregate: what a customer owes for one period, from first charge to issue.

An :class:`Invoice` is one document in storage, written whole by one writer at a time (a version
number guards each write; the database has no transactions). It decides; the use cases load it,
call it, save it and publish what it returns.

How a draft stays exact while charges arrive at least once
-----------------------------------------------------------
The running sums of open drafts live in a few :class:`DraftLedger` documents (customers are
spread over a fixed number of ledgers by a hash of their id), not in each invoice: a batch of
charges writes each ledger it touches once, however many customers it carries, and never
recomputes anything from the stored charges. The work per batch is bounded by the batch.

Each charge comes from a position in the charge stream (partition, offset) and is stored once
under its id, with the position it was first stored from. A ledger records, per partition, the
last offset through which it has counted charges (``counted_through``). The rule:

    a stored charge of a draft is counted in its customer's ledger exactly when its stored
    offset is above the ledger's ``counted_through`` for its partition; counting it and moving
    the mark are one write of the ledger document.

So a batch delivered again after a crash counts what the crashed attempt stored but did not
count (its offsets are above the mark), and nothing twice (a charge counted before is at or
below the mark); the same charge id published twice by rating at two offsets is stored from the
first, and counted once. Charges without a stream position (tests, tools) are counted when they
are newly stored.

At its period-close marker an invoice takes its lines out of the ledger (``start_finalizing``):
from then on they are the invoice's own, fixed. A charge stored on an invoice that is no longer
a draft is in those lines already (it was stored before the marker, in stream order), and charges
after the marker go to the customer's next open invoice.

Lifecycle: draft -> finalizing (frozen at the period-close marker: charges after it go to the
next open invoice) -> finalized (numbered, rendered, announced); settlement statuses follow.

After finalization the document never changes; what changes is its settlement: payments
(:meth:`Invoice.record_payment`), credit notes (:meth:`Invoice.credit`, :meth:`Invoice.void`)
and lateness (:meth:`Invoice.mark_overdue`). Each applies a payment or note once (by its id),
so a retried command changes nothing, and the status follows from the amounts
(``domain/settlement.py``). Settlement has several writers (the CLI, the API, the daily overdue
job): its saves are guarded by the version.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from billing_invoicing.domain.credit import credit_to_apply
from billing_invoicing.domain.invoice import (
    ChargeGroup,
    ChargeKind,
    InvoiceDocument,
    InvoiceStatus,
    invoice_id_for,
)
from billing_invoicing.domain.settlement import (
    OPEN_STATUSES,
    PAYABLE_STATUSES,
    CreditNoteRecord,
    PaymentRecord,
    Settlement,
    SettlementError,
    check_amount,
    days_overdue,
)
from billing_schemas.money import round_to_minor

LineKey = tuple[str, str, str, str]
"""(usage period, provider, service name, charge kind): one draft line."""


class InvoiceStateError(RuntimeError):
    """The invoice is not in a state where that can happen."""


@dataclass(frozen=True)
class StreamPosition:
    """Where a charge was read from in the charge stream."""

    partition: int
    offset: int


@dataclass(frozen=True)
class ChargeAmounts:
    """What one rated charge adds to its invoice's line (exact, in the invoicing currency)."""

    charge_id: str
    key: LineKey
    currency: str
    cost: Decimal
    price: Decimal
    savings_removed: Decimal


@dataclass(frozen=True)
class StoredCharge:
    """A charge as the store holds it after a store attempt: where it was first stored from,
    and whether this attempt stored it (``new``) or found it there already."""

    amounts: ChargeAmounts
    invoice_id: str
    position: StreamPosition | None
    new: bool


@dataclass(frozen=True)
class DraftLine:
    """Exact sums of the charges counted on one line of a draft."""

    period: str
    provider: str
    service_name: str
    kind: str = ChargeKind.USAGE.value
    charge_count: int = 0
    cost: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    savings_removed: Decimal = Decimal(0)

    @property
    def key(self) -> LineKey:
        """The line's key."""
        return (self.period, self.provider, self.service_name, self.kind)

    def plus(self, charge: ChargeAmounts) -> DraftLine:
        """This line with one more charge counted."""
        return replace(
            self,
            charge_count=self.charge_count + 1,
            cost=self.cost + charge.cost,
            price=self.price + charge.price,
            savings_removed=self.savings_removed + charge.savings_removed,
        )


@dataclass(frozen=True)
class ChargesCounted:
    """Event: charges were counted on a draft."""

    invoice_id: str
    count: int
    price: Decimal


@dataclass(frozen=True)
class FinalizingStarted:
    """Event: the draft was frozen at its period-close marker."""

    invoice_id: str
    issue_date: date


@dataclass(frozen=True)
class Finalized:
    """Event: the invoice was numbered and its document fixed."""

    invoice_id: str
    number: str


@dataclass(frozen=True)
class CreditTaken:
    """Event: the customer's credit balance was taken off the invoice being finalized."""

    invoice_id: str
    customer_id: str
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class PaymentApplied:
    """Event: a payment was counted against the invoice."""

    invoice_id: str
    payment_id: str
    amount: Decimal
    outstanding_after: Decimal


@dataclass(frozen=True)
class CreditNoteApplied:
    """Event: a credit note reduced what the invoice owes (``void``: it cancelled it)."""

    invoice_id: str
    credit_note_id: str
    amount: Decimal
    void: bool


@dataclass(frozen=True)
class BecameOverdue:
    """Event: the invoice is past its due date with money outstanding, as of a day."""

    invoice_id: str
    as_of: date
    days_overdue: int
    outstanding: Decimal


Event = (
    ChargesCounted
    | FinalizingStarted
    | CreditTaken
    | Finalized
    | PaymentApplied
    | CreditNoteApplied
    | BecameOverdue
)

__all__ = ["DraftLedger", "Invoice", "invoice_id_for", "next_period", "parse_invoice_id"]


def parse_invoice_id(invoice_id: str) -> tuple[str, str]:
    """``(customer id, period)`` of an invoice id (customer ids may contain ``:``)."""
    customer_id, period = invoice_id.rsplit(":", 1)
    return customer_id, period


def next_period(period: str) -> str:
    """The period after ``YYYY-MM``."""
    year, month = (int(p) for p in period.split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def charge_groups(lines: Mapping[LineKey, DraftLine]) -> list[ChargeGroup]:
    """Lines as the assembly takes them (sorted by key)."""
    return [
        ChargeGroup(
            period=line.period,
            provider=line.provider,
            service_name=line.service_name,
            charge_count=line.charge_count,
            cost=line.cost,
            price=line.price,
            savings_removed=line.savings_removed,
            charge_kind=ChargeKind(line.kind),
        )
        for _, line in sorted(lines.items())
    ]


LEDGERS = 16
"""How many ledgers share the open drafts (a batch writes at most this many documents)."""


def ledger_of(customer_id: str) -> int:
    """The ledger that holds a customer's open drafts: a stable hash of its id."""
    return zlib.crc32(customer_id.encode()) % LEDGERS


@dataclass(frozen=True)
class CurrencySum:
    """The charges of a draft in one currency: how many, and their exact price."""

    count: int = 0
    price: Decimal = Decimal(0)


class CurrencyMismatchError(ValueError):
    """A draft holds charges in a currency other than its invoice's: it cannot be issued."""


@dataclass
class DraftSums:
    """The running sums of one open draft."""

    lines: dict[LineKey, DraftLine] = field(default_factory=dict)
    currency: str | None = None
    by_currency: dict[str, CurrencySum] = field(default_factory=dict)
    """The charges counted, grouped by their currency (one group unless rating priced some
    in another currency)."""

    @property
    def charge_count(self) -> int:
        """Charges counted on it."""
        return sum(line.charge_count for line in self.lines.values())

    @property
    def total(self) -> Decimal:
        """The exact sum of the prices counted so far."""
        return sum((line.price for line in self.lines.values()), Decimal(0))

    def add(self, charge: ChargeAmounts) -> None:
        """Count one charge on its line."""
        line = self.lines.get(charge.key) or DraftLine(*charge.key)
        self.lines[charge.key] = line.plus(charge)
        if self.currency is None:
            self.currency = charge.currency
        group = self.by_currency.get(charge.currency, CurrencySum())
        self.by_currency[charge.currency] = CurrencySum(group.count + 1, group.price + charge.price)

    def currencies(self) -> dict[str, CurrencySum]:
        """The charges by currency (a ledger written before they were grouped: all in the
        draft's currency)."""
        if self.by_currency or self.currency is None:
            return dict(self.by_currency)
        return {self.currency: CurrencySum(self.charge_count, self.total)}

    def check_currency(self, invoice_id: str, currency: str) -> None:
        """Refuse to issue the draft in ``currency`` if any of its charges is in another
        (:class:`CurrencyMismatchError`, saying which and why): amounts in two currencies are
        never added up."""
        foreign = {c: s for c, s in sorted(self.currencies().items()) if c != currency}
        if not foreign:
            return
        which = "; ".join(
            f"{s.count} charge{'s' if s.count != 1 else ''} in {c} "
            f"(price {round_to_minor(s.price, c):f} {c})"
            for c, s in foreign.items()
        )
        msg = (
            f"cannot close {invoice_id} in {currency}: {which}. The invoice is in the "
            f"customer's currency, {currency}, and amounts in another currency are never added "
            "to it: rating priced these with a price list in another currency, or the "
            "customer's currency changed after they were rated. Re-rate the period with a "
            f"price list in {currency} (billing rate), then replay this close marker"
        )
        raise CurrencyMismatchError(msg)


@dataclass
class DraftLedger:
    """The running sums of the open drafts of the customers of one ledger (see the module
    docstring), and how far in each partition of the charge stream they are counted."""

    ledger: int
    drafts: dict[str, DraftSums] = field(default_factory=dict)
    counted_through: dict[int, int] = field(default_factory=dict)
    version: int = 0
    """How many times it was saved; a save expects the stored version to be this one."""

    def counts(self, charge: StoredCharge) -> bool:
        """Whether ``charge`` is still to be counted (the rule of the module docstring)."""
        if charge.position is None:
            return charge.new
        return charge.position.offset > self.counted_through.get(charge.position.partition, -1)

    def add_charges(
        self, charges: Iterable[StoredCharge], through: Mapping[int, int]
    ) -> list[Event]:
        """Count the charges not counted yet, each on its draft, and mark the batch's offsets
        as counted. ``charges`` are of drafts of this ledger's customers; ``through`` is, per
        partition, the last offset of the batch."""
        counted: dict[str, tuple[int, Decimal]] = {}
        for charge in charges:
            if not self.counts(charge):
                continue
            self.drafts.setdefault(charge.invoice_id, DraftSums()).add(charge.amounts)
            count, price = counted.get(charge.invoice_id, (0, Decimal(0)))
            counted[charge.invoice_id] = (count + 1, price + charge.amounts.price)
        for partition, offset in through.items():
            if offset > self.counted_through.get(partition, -1):
                self.counted_through[partition] = offset
        return [ChargesCounted(i, n, p) for i, (n, p) in sorted(counted.items())]

    def take(self, invoice_id: str) -> DraftSums | None:
        """Hand a draft's sums over to its invoice (at its close marker): the ledger forgets
        them."""
        return self.drafts.pop(invoice_id, None)


@dataclass
class Invoice:
    """One customer's invoice for one period (see the module docstring)."""

    invoice_id: str
    customer_id: str
    period: str
    status: InvoiceStatus = InvoiceStatus.DRAFT
    lines: dict[LineKey, DraftLine] = field(default_factory=dict)
    """Frozen at finalizing (a draft's running sums are in its ledger)."""
    currency: str | None = None
    issue_date: date | None = None
    number: str | None = None
    seq: int | None = None
    document: InvoiceDocument | None = None
    """The issued document (fixed at finalization)."""
    pdf_file_id: str | None = None
    pdf_sha256: str | None = None
    version: int = 0
    """How many times it was saved; a save expects the stored version to be this one."""
    paid: Decimal = Decimal(0)
    """Payments counted against it (each once: ``payment_ids``)."""
    credited: Decimal = Decimal(0)
    """Credit notes counted on it (each once: ``credit_note_ids``)."""
    payment_ids: list[str] = field(default_factory=list)
    credit_note_ids: list[str] = field(default_factory=list)
    voided_on: date | None = None
    overdue_since: date | None = None
    settled_by: str | None = None
    """The payment or credit note after which nothing was left to pay."""
    paid_announced_at: datetime | None = None
    voided_announced_at: datetime | None = None
    credit_applied: Decimal | None = None
    """The customer's credit taken off it, decided once when it is frozen (None: not yet)."""

    @classmethod
    def new(cls, invoice_id: str) -> Invoice:
        """An empty draft."""
        customer_id, period = parse_invoice_id(invoice_id)
        return cls(invoice_id=invoice_id, customer_id=customer_id, period=period)

    @property
    def is_draft(self) -> bool:
        """Still taking charges."""
        return self.status is InvoiceStatus.DRAFT

    def charge_groups(self) -> list[ChargeGroup]:
        """The frozen lines as the assembly takes them (sorted by key)."""
        return charge_groups(self.lines)

    def start_finalizing(self, issue_date: date, draft: DraftSums | None) -> list[Event]:
        """Freeze the draft at its close marker with the sums its ledger holds, fixing the
        issue date.

        An invoice already past draft keeps the lines and issue date it had (a close that
        crashed half-way resumes with them) and nothing happens.
        """
        if not self.is_draft:
            return []
        self.status = InvoiceStatus.FINALIZING
        self.issue_date = issue_date
        if draft is not None:
            self.lines = dict(draft.lines)
            self.currency = self.currency or draft.currency
        return [FinalizingStarted(self.invoice_id, issue_date)]

    def take_credit(self, balance: Decimal, total: Decimal, currency: str) -> list[Event]:
        """Decide, once, how much of the customer's credit ``balance`` (in ``currency``, the
        invoice's) the frozen invoice of ``total`` takes (``domain/credit.py``); a close that
        runs again keeps what was decided and nothing happens."""
        if self.status is not InvoiceStatus.FINALIZING:
            msg = f"{self.invoice_id} is {self.status}: credit is applied while finalizing"
            raise InvoiceStateError(msg)
        if self.credit_applied is not None:
            return []
        self.credit_applied = credit_to_apply(balance, total)
        if not self.credit_applied:
            return []
        return [CreditTaken(self.invoice_id, self.customer_id, currency, self.credit_applied)]

    def finalize(
        self, document: InvoiceDocument, *, seq: int, pdf_file_id: str, pdf_sha256: str
    ) -> list[Event]:
        """Issue the frozen invoice: numbered, rendered, its document fixed from now on."""
        if self.status is not InvoiceStatus.FINALIZING:
            msg = f"{self.invoice_id} is {self.status}, not finalizing"
            raise InvoiceStateError(msg)
        if document.number is None or document.invoice_id != self.invoice_id:
            msg = f"{self.invoice_id}: the document to issue is not this invoice's, numbered"
            raise InvoiceStateError(msg)
        self.status = InvoiceStatus.FINALIZED
        self.number = document.number
        self.seq = seq
        self.document = document
        self.pdf_file_id = pdf_file_id
        self.pdf_sha256 = pdf_sha256
        return [Finalized(self.invoice_id, document.number)]

    # --- settlement (after finalization) ----------------------------------------------------

    def _issued(self) -> InvoiceDocument:
        if self.document is None or self.status in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZING):
            msg = f"{self.invoice_id} is {self.status}: it is not issued yet"
            raise InvoiceStateError(msg)
        return self.document

    def standing(self) -> Settlement:
        """What it owes and what was paid and credited (``domain/settlement.py``)."""
        document = self._issued()
        return Settlement(
            total=document.total,
            paid=self.paid,
            credited=self.credited,
            voided=self.voided_on is not None,
            overdue=self.overdue_since is not None,
            credit_applied=self.credit_applied or Decimal(0),
        )

    def settlement_state(self) -> tuple[object, ...]:
        """Everything settlement changes (equal before and after: nothing to save)."""
        return (
            self.status,
            self.paid,
            self.credited,
            tuple(self.payment_ids),
            tuple(self.credit_note_ids),
            self.voided_on,
            self.overdue_since,
            self.settled_by,
            self.paid_announced_at,
            self.voided_announced_at,
        )

    def _follow(self, cause: str | None) -> None:
        """Set the status that follows from the amounts; remember what settled it."""
        self.status = self.standing().status
        if self.status is InvoiceStatus.PAID and self.settled_by is None:
            self.settled_by = cause

    def check_payable(self) -> None:
        """Refuse a payment on an invoice that takes none (void): :class:`SettlementError`."""
        self._issued()
        if self.status not in PAYABLE_STATUSES:
            msg = f"invoice {self.number} is {self.status}: no payment can be recorded on it"
            raise SettlementError(msg)

    def record_payment(self, payment: PaymentRecord) -> list[Event]:
        """Count a payment once (a payment counted before changes nothing). A payment is taken
        while the invoice owes money or is paid (beyond what is owed: the customer's credit);
        never on a void one."""
        self.check_payable()
        if payment.invoice_id != self.invoice_id or payment.currency != self.currency_issued:
            msg = f"payment {payment.payment_id} is not one of {self.invoice_id}"
            raise SettlementError(msg)
        if payment.payment_id in self.payment_ids:
            return []
        self.payment_ids.append(payment.payment_id)
        self.paid += payment.amount
        self._follow(payment.payment_id)
        return [
            PaymentApplied(
                self.invoice_id, payment.payment_id, payment.amount, self.standing().outstanding
            )
        ]

    @property
    def currency_issued(self) -> str:
        """The currency of the issued document."""
        return self._issued().currency

    def check_credit(self, credit_note_id: str, amount: Decimal, *, void: bool) -> None:
        """Refuse a credit note that cannot be issued (:class:`SettlementError` saying why):
        on a void invoice (except the void itself, issued again to finish what a crash left),
        nothing left to credit, or more than is left. A note counted before is not checked
        again."""
        standing = self.standing()
        known = credit_note_id in self.credit_note_ids
        if standing.voided and not (void and known):
            msg = f"invoice {self.number} is void already"
            raise SettlementError(msg)
        if known:
            return
        if amount <= 0:
            msg = f"invoice {self.number} has nothing left to credit"
            raise SettlementError(msg)
        check_amount(amount, self.currency_issued, "the amount credited")
        if amount > standing.owed:
            msg = (
                f"cannot credit {amount} {self.currency_issued} on {self.number}: "
                f"only {standing.owed} is left"
            )
            raise SettlementError(msg)

    def credit(self, note: CreditNoteRecord) -> list[Event]:
        """Count a credit note once: it reduces what the invoice owes (money paid beyond that
        becomes the customer's credit)."""
        if note.void:
            msg = f"credit note {note.number} voids the invoice: use void()"
            raise SettlementError(msg)
        return self._apply_note(note)

    def void(self, note: CreditNoteRecord) -> list[Event]:
        """Cancel the invoice with a credit note for everything not credited yet (counted once;
        a void issued again finds it)."""
        if not note.void:
            msg = f"credit note {note.number} does not void the invoice: use credit()"
            raise SettlementError(msg)
        return self._apply_note(note)

    def _apply_note(self, note: CreditNoteRecord) -> list[Event]:
        self.check_credit(note.credit_note_id, note.amount, void=note.void)
        if note.invoice_id != self.invoice_id or note.currency != self.currency_issued:
            msg = f"credit note {note.number} is not one of {self.invoice_id}"
            raise SettlementError(msg)
        if note.credit_note_id in self.credit_note_ids:
            return []
        self.credit_note_ids.append(note.credit_note_id)
        self.credited += note.amount
        if note.void:
            self.voided_on = note.issue_date
        self._follow(note.credit_note_id)
        return [CreditNoteApplied(self.invoice_id, note.credit_note_id, note.amount, note.void)]

    def mark_overdue(self, as_of: date) -> list[Event]:
        """Past its due date with money outstanding on ``as_of``: overdue (from the first day it
        is found so), reported once per day asked. Nothing happens to an invoice paid, void,
        or not due yet."""
        document = self._issued()
        if self.status not in OPEN_STATUSES or document.due_date is None:
            return []
        if document.due_date >= as_of:
            return []
        if self.overdue_since is None:
            self.overdue_since = as_of
        self._follow(None)
        standing = self.standing()
        if standing.outstanding <= 0 or self.status is not InvoiceStatus.OVERDUE:
            return []
        return [
            BecameOverdue(
                self.invoice_id,
                as_of,
                days_overdue(document.due_date, as_of),
                standing.outstanding,
            )
        ]

    @property
    def paid_unannounced(self) -> bool:
        """Paid, and ``InvoicePaid`` not acknowledged yet (announced once per invoice)."""
        return self.status is InvoiceStatus.PAID and self.paid_announced_at is None

    @property
    def voided_unannounced(self) -> bool:
        """Void, and ``InvoiceVoided`` not acknowledged yet (announced once per invoice)."""
        return self.voided_on is not None and self.voided_announced_at is None

    def paid_announced(self, at: datetime) -> None:
        """``InvoicePaid`` was acknowledged by the broker."""
        self.paid_announced_at = self.paid_announced_at or at

    def voided_announced(self, at: datetime) -> None:
        """``InvoiceVoided`` was acknowledged by the broker."""
        self.voided_announced_at = self.voided_announced_at or at
