"""The invoice aggregate: what a customer owes for one period, from first charge to issue.

An :class:`Invoice` is one document in storage, written whole by one writer at a time (a version
number guards each write; the database has no transactions). It decides; the use cases load it,
call it, save it and publish what it returns.

How a draft stays exact while charges arrive at least once
-----------------------------------------------------------
A draft keeps, per line key (usage period, provider, service), the exact sums of the charges
counted on it. It is updated per batch, never recomputed from every stored charge, so the work
per batch does not grow with what is already stored.

Each charge comes from a position in the charge stream (partition, offset) and is stored once
under its id, with the position it was first stored from. The draft records, per partition,
the last offset whose charges it has counted (``counted_through``). The rule:

    a stored charge is counted on its invoice exactly when its stored offset is above the
    invoice's ``counted_through`` for its partition; counting it and moving the mark are one
    write of the invoice document.

So a batch delivered again after a crash counts what the crashed attempt stored but did not
count (its offsets are above the mark), and nothing twice (a charge counted before is at or
below the mark); the same charge id published twice by rating at two offsets is stored from the
first, and counted once. Charges without a stream position (tests, tools) are counted when they
are newly stored.

Lifecycle: draft -> finalizing (frozen at the period-close marker: charges after it go to the
next open invoice) -> finalized (numbered, rendered, announced); settlement statuses follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from billing_invoicing.domain.invoice import (
    ChargeGroup,
    InvoiceDocument,
    InvoiceStatus,
    invoice_id_for,
)

LineKey = tuple[str, str, str]
"""(usage period, provider, service name): one draft line."""


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
    charge_count: int = 0
    cost: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    savings_removed: Decimal = Decimal(0)

    @property
    def key(self) -> LineKey:
        """The line's key."""
        return (self.period, self.provider, self.service_name)

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


Event = ChargesCounted | FinalizingStarted | Finalized

__all__ = ["Invoice", "invoice_id_for", "next_period", "parse_invoice_id"]


def parse_invoice_id(invoice_id: str) -> tuple[str, str]:
    """``(customer id, period)`` of an invoice id (customer ids may contain ``:``)."""
    customer_id, period = invoice_id.rsplit(":", 1)
    return customer_id, period


def next_period(period: str) -> str:
    """The period after ``YYYY-MM``."""
    year, month = (int(p) for p in period.split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


@dataclass
class Invoice:
    """One customer's invoice for one period (see the module docstring)."""

    invoice_id: str
    customer_id: str
    period: str
    status: InvoiceStatus = InvoiceStatus.DRAFT
    lines: dict[LineKey, DraftLine] = field(default_factory=dict)
    counted_through: dict[int, int] = field(default_factory=dict)
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

    @classmethod
    def new(cls, invoice_id: str) -> Invoice:
        """An empty draft."""
        customer_id, period = parse_invoice_id(invoice_id)
        return cls(invoice_id=invoice_id, customer_id=customer_id, period=period)

    @property
    def is_draft(self) -> bool:
        """Still taking charges."""
        return self.status is InvoiceStatus.DRAFT

    @property
    def charge_count(self) -> int:
        """Charges counted on it."""
        return sum(line.charge_count for line in self.lines.values())

    @property
    def draft_total(self) -> Decimal:
        """The exact sum of the prices counted so far."""
        return sum((line.price for line in self.lines.values()), Decimal(0))

    def counts(self, charge: StoredCharge) -> bool:
        """Whether ``charge`` is still to be counted here (the rule of the module docstring)."""
        if charge.invoice_id != self.invoice_id:
            return False
        if charge.position is None:
            return charge.new
        return charge.position.offset > self.counted_through.get(charge.position.partition, -1)

    def add_charges(
        self, charges: Iterable[StoredCharge], through: Mapping[int, int]
    ) -> list[Event]:
        """Count the charges not counted yet, and mark the batch's offsets as counted.

        ``through`` is, per partition, the last offset of the batch: everything stored from at
        or below it on this invoice is counted once this invoice is saved.
        """
        if not self.is_draft:
            msg = f"{self.invoice_id} is {self.status}: charges go onto the next open invoice"
            raise InvoiceStateError(msg)
        count, price = 0, Decimal(0)
        for charge in charges:
            if not self.counts(charge):
                continue
            amounts = charge.amounts
            line = self.lines.get(amounts.key) or DraftLine(*amounts.key)
            self.lines[amounts.key] = line.plus(amounts)
            if self.currency is None:
                self.currency = amounts.currency
            count += 1
            price += amounts.price
        for partition, offset in through.items():
            if offset > self.counted_through.get(partition, -1):
                self.counted_through[partition] = offset
        return [ChargesCounted(self.invoice_id, count, price)] if count else []

    def charge_groups(self) -> list[ChargeGroup]:
        """The draft's lines as the assembly takes them (sorted by key)."""
        return [
            ChargeGroup(
                period=line.period,
                provider=line.provider,
                service_name=line.service_name,
                charge_count=line.charge_count,
                cost=line.cost,
                price=line.price,
                savings_removed=line.savings_removed,
            )
            for _, line in sorted(self.lines.items())
        ]

    def start_finalizing(self, issue_date: date) -> list[Event]:
        """Freeze the draft at its close marker, fixing the issue date.

        An invoice already past draft keeps the issue date it had (a close that crashed
        half-way resumes with it) and nothing happens.
        """
        if not self.is_draft:
            return []
        self.status = InvoiceStatus.FINALIZING
        self.issue_date = issue_date
        return [FinalizingStarted(self.invoice_id, issue_date)]

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
