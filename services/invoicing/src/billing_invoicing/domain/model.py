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
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from billing_invoicing.domain.invoice import (
    ChargeGroup,
    ChargeKind,
    InvoiceDocument,
    InvoiceStatus,
    invoice_id_for,
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


Event = ChargesCounted | FinalizingStarted | Finalized

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
