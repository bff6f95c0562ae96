"""Reconciliation of a period (pure): what each service stored and published, compared record
by record, independently of the code that computed it.

The chain a provider's line follows, and what is compared at each link (``Check``):

1. ``bill``: ingest's registry of a bill: its billed cost per currency and accepted rows =
   the lines it kept of the file (their sum and count); rejected rows are listed.
2. ``usage``: the lines of the loaded bills (and the accepted upstream events) = the usage
   records on ``billing.usage.recorded.v1``, one record id each, same account and billed cost.
3. ``rating``: every published record = one rated charge (charge id = record id) with its
   billed cost as cost, unless it was dead-lettered; and the charge = what rating kept of it.
4. ``invoicing``: every rated charge = one charge stored by invoicing, same cost and price,
   unless dead-lettered; a charge stored as late went onto the next invoice.
5. ``invoice``: the charges stored for an invoice = its lines (per period, provider and
   service: count, cost, exact price); a finalized invoice's rounded lines add up to its
   subtotal, which is the exact sum rounded (within half a minor unit).

A :class:`Difference` names the records that make it and, when a known cause explains it,
that cause (rejected, dead-lettered, unknown account, late onto the next invoice, reversal of a
restated line). A period reconciles when no difference is unexplained.

Amounts are compared exactly, as each service keeps them: decimal strings on the wire and in
rating's store are compared as they are; invoicing keeps nanos (10**-9, rounded half-even), so
a wire amount is compared with one invoicing stored in nanos, and invoice lines (sums of stored
charges) with sums of stored charges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing_invoicing.domain.one_off import is_one_off
from billing_schemas.events import PeriodReconciled, ReconcileVerdict
from billing_schemas.money import minor_units, to_fixed_units

ZERO = Decimal(0)
UNKNOWN_ACCOUNT = "no customer owns account"
"""How rating's dead-letter error starts when a record's account belongs to no customer."""
RECORDS_SHOWN = 20
"""Record ids a difference lists (the count says how many there are)."""


class Check(StrEnum):
    """The link of the chain a difference was found at (see the module docstring)."""

    BILL = "bill"
    USAGE = "usage"
    RATING = "rating"
    INVOICING = "invoicing"
    INVOICE = "invoice"


class Explanation(StrEnum):
    """Known causes of a difference: such a difference is expected, and shown."""

    REJECTED = "rejected"
    DEAD_LETTERED = "dead-lettered"
    UNKNOWN_ACCOUNT = "unknown account"
    LATE = "late onto the next invoice"
    REVERSAL = "reversal of a restated line"
    ONE_OFF = "one-off charge added by an operator"


# --- what the sources hold ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """A usage record, as the bill registry kept it or as the usage topic carries it."""

    record_id: str
    bill_id: str | None
    provider: str
    billing_account_id: str
    sub_account_id: str
    currency: str
    billed_cost: Decimal
    corrects_record_id: str | None = None


@dataclass(frozen=True)
class Bill:
    """A loaded bill as ingest's registry holds it.

    ``billed_cost`` and ``rows_accepted`` are the registry's figures for the whole file;
    ``kept_cost`` and ``kept_lines`` are what its kept lines add up to (every period);
    ``lines`` are its kept lines of the reconciled period.
    """

    bill_id: str
    file_name: str
    status: str
    billed_cost: Mapping[str, Decimal]
    rows_accepted: int
    rows_rejected: int
    kept_cost: Mapping[str, Decimal]
    kept_lines: int
    lines: Mapping[str, Usage]
    rejected_rows: Sequence[str] = ()
    """What the registry kept of each rejected row (``row 12 (column): reason``)."""


@dataclass(frozen=True, slots=True)
class Charge:
    """A rated charge as the charge topic carries it."""

    charge_id: str
    record_id: str
    customer_id: str
    provider: str
    service_name: str
    cost: Decimal
    cost_currency: str
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class StoredCharge:
    """A charge as invoicing stored it (amounts from their nanos)."""

    charge_id: str
    customer_id: str
    invoice_id: str
    period: str
    provider: str
    service_name: str
    cost: Decimal
    price: Decimal
    late: bool


LineKey = tuple[str, str, str]
"""An invoice line's key: the charges' period, provider and service."""


@dataclass(frozen=True, slots=True)
class LineSums:
    """What an invoice line adds up: charges, their cost and their exact price."""

    charges: int
    cost: Decimal
    price: Decimal

    def plus(self, cost: Decimal, price: Decimal) -> LineSums:
        """This line with one more charge."""
        return LineSums(self.charges + 1, self.cost + cost, self.price + price)


NO_SUMS = LineSums(0, ZERO, ZERO)


@dataclass(frozen=True)
class InvoiceFigures:
    """An invoice (draft or finalized) as invoicing stored it.

    ``lines``: its usage and late-usage lines by key. For a finalized invoice, ``rounded`` are
    every line's (exact, rounded) amounts, subscriptions and netting included, and ``subtotal``.
    """

    invoice_id: str
    customer_id: str
    period: str
    status: str
    currency: str | None
    lines: Mapping[LineKey, LineSums]
    rounded: Sequence[tuple[Decimal, Decimal]] = ()
    subtotal: Decimal | None = None
    taxes: Sequence[TaxFigures] = ()
    tax: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TaxFigures:
    """One tax rate of a finalized invoice: its exact base, percent, exact and rounded tax."""

    label: str
    percent: Decimal
    base_exact: Decimal
    tax_exact: Decimal
    tax: Decimal


@dataclass(frozen=True, slots=True)
class Announcement:
    """A finalized invoice as the invoice-finalized topic announced it."""

    invoice_id: str
    number: str
    subtotal: Decimal
    tax: Decimal


ANNOUNCED_STATUSES = frozenset({"finalized", "partially_paid", "paid", "overdue", "void"})
"""Statuses of an invoice whose finalization was announced (``finalizing``: not yet)."""


@dataclass(frozen=True)
class Sources:
    """Everything read for one period (and customer, if one was asked for)."""

    period: str
    customer_id: str | None = None
    bills: Sequence[Bill] = ()
    restated_ids: frozenset[str] = frozenset()
    """Record ids a restatement reversed (ingest's reversals)."""
    upstream_ids: frozenset[str] = frozenset()
    """Record ids of accepted upstream usage events (ingest's claims)."""
    upstream_refused: Sequence[tuple[str, str]] = ()
    """Upstream events of the period ingest refused: (``source:id``, ``conflict`` or
    ``rejected``), from the rejected-usage topic."""
    usage: Sequence[Usage] = ()
    """The period's records on the usage topic, every copy, in topic order."""
    usage_dead_letters: Mapping[str, str] = field(default_factory=dict)
    """Record id -> error, from the usage topic's dead letters."""
    charges: Sequence[Charge] = ()
    """The period's rated charges on the charge topic, every copy."""
    charge_dead_letters: Mapping[str, str] = field(default_factory=dict)
    """Charge id -> error, from the charge topic's dead letters."""
    rated_prices: Mapping[str, Decimal] = field(default_factory=dict)
    """Record id -> price of its charge, as rating kept it (the first copy)."""
    rating_corrections: Mapping[str, Decimal] = field(default_factory=dict)
    """Correction charge id -> price, as rating kept it."""
    stored: Sequence[StoredCharge] = ()
    """Invoicing's charges of the period, and those stored on the period's invoices."""
    invoices: Sequence[InvoiceFigures] = ()
    """The period's invoices."""
    announced: Sequence[Announcement] = ()
    """The period's invoices as announced on the invoice-finalized topic, every copy."""
    unreadable: Mapping[str, str | None] = field(default_factory=dict)
    """Messages of the usage or charge topic that are no record or charge (any period):
    location -> the error of their dead letter (the same bytes), None if not dead-lettered."""


# --- the result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """Something that does not add up, the records that make it, and its cause if known."""

    check: Check
    subject: str
    what: str
    records: tuple[str, ...] = ()
    explanation: Explanation | None = None
    detail: str = ""

    @property
    def explained(self) -> bool:
        """A known cause explains it."""
        return self.explanation is not None


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """One provider account of one bill, followed down the chain (billed cost, per currency)."""

    bill_id: str
    provider: str
    billing_account_id: str
    currency: str
    lines: int
    billed: Decimal
    published: Decimal
    charged: Decimal
    stored: Decimal


@dataclass(frozen=True, slots=True)
class CustomerFigures:
    """One customer: rated prices (corrections included) against its invoice lines."""

    customer_id: str
    currency: str
    charges: int
    rated: Decimal
    invoiced: Decimal
    late: Decimal


@dataclass(frozen=True)
class Reconciliation:
    """What reconciling a period found."""

    period: str
    customer_id: str | None
    counts: Mapping[str, int]
    accounts: Sequence[AccountFigures]
    customers: Sequence[CustomerFigures]
    differences: Sequence[Difference]

    @property
    def unexplained(self) -> list[Difference]:
        """Differences no known cause explains."""
        return [d for d in self.differences if not d.explained]

    @property
    def reconciles(self) -> bool:
        """Nothing unexplained."""
        return not self.unexplained


# --- the comparisons ----------------------------------------------------------------------


def _ids(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(ids))


def _nanos(amount: Decimal) -> int:
    return to_fixed_units(amount)


def check_bills(bills: Sequence[Bill]) -> list[Difference]:
    """A bill's registry figures equal what its kept lines add up to; rejected rows are listed.

    Rule: for each bill, kept lines = accepted rows and, per currency, their billed cost = the
    bill's billed cost; every rejected row counted is kept (with its reason).
    """
    out: list[Difference] = []
    for bill in bills:
        if bill.kept_lines != bill.rows_accepted:
            out.append(
                Difference(
                    Check.BILL,
                    bill.bill_id,
                    f"{bill.rows_accepted} rows accepted, {bill.kept_lines} lines kept",
                )
            )
        for currency in sorted(set(bill.billed_cost) | set(bill.kept_cost)):
            billed = bill.billed_cost.get(currency, ZERO)
            kept = bill.kept_cost.get(currency, ZERO)
            if _nanos(billed) != _nanos(kept):
                out.append(
                    Difference(
                        Check.BILL,
                        bill.bill_id,
                        f"billed cost {billed} {currency} in the registry, {kept} in its lines",
                    )
                )
        if bill.rows_rejected:
            out.append(
                Difference(
                    Check.BILL,
                    bill.bill_id,
                    f"{bill.rows_rejected} rows of {bill.file_name} rejected",
                    tuple(bill.rejected_rows),
                    Explanation.REJECTED,
                )
            )
            if len(bill.rejected_rows) != bill.rows_rejected:
                out.append(
                    Difference(
                        Check.BILL,
                        bill.bill_id,
                        f"{bill.rows_rejected} rows rejected, {len(bill.rejected_rows)} kept",
                    )
                )
    return out


def _first_copies(usage: Sequence[Usage]) -> tuple[dict[str, Usage], set[str]]:
    """Each record id's first copy, and the ids published with differing contents."""
    first: dict[str, Usage] = {}
    conflicting: set[str] = set()
    for record in usage:
        seen = first.setdefault(record.record_id, record)
        if seen != record:
            conflicting.add(record.record_id)
    return first, conflicting


def check_usage(sources: Sources, published: Mapping[str, Usage]) -> list[Difference]:
    """The loaded bills' lines and the accepted upstream events = the records published.

    Rule: each line of a loaded bill is on the usage topic under its record id, with the same
    account and billed cost; each record on the topic is a line of a loaded bill, the reversal
    of a line a restatement dropped, or an accepted upstream event.
    """
    lines: dict[str, Usage] = {}
    for bill in sources.bills:
        lines.update(bill.lines)
    return _lines_not_published(lines, published) + _records_of_no_line(sources, lines, published)


def _lines_not_published(
    lines: Mapping[str, Usage], published: Mapping[str, Usage]
) -> list[Difference]:
    """Bill lines never published, or published with another account or billed cost."""
    out: list[Difference] = []
    missing = [i for i in lines if i not in published]
    if missing:
        out.append(Difference(Check.USAGE, "usage topic", "lines never published", _ids(missing)))
    changed = [
        i
        for i, line in lines.items()
        if i in published
        and (
            published[i].billed_cost != line.billed_cost
            or published[i].currency != line.currency
            or published[i].billing_account_id != line.billing_account_id
            or published[i].sub_account_id != line.sub_account_id
        )
    ]
    if changed:
        out.append(
            Difference(
                Check.USAGE,
                "usage topic",
                "published with another account or billed cost than the bill's line",
                _ids(changed),
            )
        )
    return out


def _records_of_no_line(
    sources: Sources, lines: Mapping[str, Usage], published: Mapping[str, Usage]
) -> list[Difference]:
    """Published records that are no bill line: reversals of lines a restatement dropped
    (explained), records of no loaded bill, upstream records without an accepted event."""
    out: list[Difference] = []
    reversals, unknown_bill, unknown_upstream = [], [], []
    for record_id, record in published.items():
        if record_id in lines:
            continue
        if record.bill_id is None:
            if record_id not in sources.upstream_ids:
                unknown_upstream.append(record_id)
        elif record.corrects_record_id in sources.restated_ids:
            reversals.append(record_id)
        else:
            unknown_bill.append(record_id)
    if reversals:
        out.append(
            Difference(
                Check.USAGE,
                "usage topic",
                "reversals published for lines restated bills dropped",
                _ids(reversals),
                Explanation.REVERSAL,
            )
        )
    if unknown_bill:
        out.append(
            Difference(
                Check.USAGE,
                "usage topic",
                "published but not a line of any loaded bill",
                _ids(unknown_bill),
            )
        )
    if unknown_upstream:
        out.append(
            Difference(
                Check.USAGE,
                "usage topic",
                "upstream records without an accepted event",
                _ids(unknown_upstream),
            )
        )
    return out


def check_upstream(sources: Sources) -> list[Difference]:
    """Upstream events ingest refused (conflicting with an accepted one, or invalid) are listed
    as explained: each has its rejected-usage event with the reason."""
    by_verdict: dict[str, list[str]] = defaultdict(list)
    for key, verdict in sources.upstream_refused:
        by_verdict[verdict].append(key)
    return [
        Difference(
            Check.USAGE,
            "upstream events",
            f"upstream events refused ({verdict})",
            _ids(keys),
            Explanation.REJECTED,
        )
        for verdict, keys in sorted(by_verdict.items())
    ]


def check_unreadable(sources: Sources) -> list[Difference]:
    """A message that is no record or charge must have been dead-lettered (byte for byte)."""
    by_error: dict[str | None, list[str]] = defaultdict(list)
    for where, error in sources.unreadable.items():
        by_error[error].append(where)
    return [
        Difference(
            Check.USAGE if ".usage." in where_list[0] else Check.RATING,
            "topics",
            "messages that are no usage record or rated charge",
            _ids(where_list),
            None if error is None else Explanation.DEAD_LETTERED,
            detail=error or "",
        )
        for error, where_list in sorted(by_error.items(), key=lambda e: e[0] or "")
    ]


def _dead(error: str) -> Explanation:
    return (
        Explanation.UNKNOWN_ACCOUNT
        if error.startswith(UNKNOWN_ACCOUNT)
        else (Explanation.DEAD_LETTERED)
    )


def _dead_letter_differences(
    check: Check, subject: str, what: str, ids: Iterable[str], errors: Mapping[str, str]
) -> list[Difference]:
    """Missing ids: grouped by dead-letter error when dead-lettered, else unexplained."""
    by_error: dict[str, list[str]] = defaultdict(list)
    lost = []
    for i in ids:
        if i in errors:
            by_error[errors[i]].append(i)
        else:
            lost.append(i)
    out = [
        Difference(check, subject, what, _ids(found), _dead(error), detail=error)
        for error, found in sorted(by_error.items())
    ]
    if lost:
        out.append(Difference(check, subject, what, _ids(lost)))
    return out


def _first_charges(charges: Sequence[Charge]) -> tuple[dict[str, Charge], set[str]]:
    first: dict[str, Charge] = {}
    conflicting: set[str] = set()
    for charge in charges:
        seen = first.setdefault(charge.charge_id, charge)
        if seen != charge:
            conflicting.add(charge.charge_id)
    return first, conflicting


def check_rating(
    sources: Sources, published: Mapping[str, Usage], charges: Mapping[str, Charge]
) -> list[Difference]:
    """Every published record was rated once at its billed cost, and rating kept that charge.

    Rule: record id = charge id; the charge's cost and cost currency are the record's billed
    cost and currency; a record without a charge is explained only by a dead letter; a
    correction charge (id other than its record's) corrects a published record; rating keeps
    each charge's price (corrections apart). One-off charges an operator added are no record's
    and never rated: they are listed as such.
    """
    out: list[Difference] = []
    one_offs = sorted(i for i, c in charges.items() if is_one_off(c.provider))
    if one_offs:
        out.append(
            Difference(
                Check.RATING,
                "charge topic",
                "one-off charges (no usage record)",
                _ids(one_offs),
                Explanation.ONE_OFF,
            )
        )
        charges = {i: c for i, c in charges.items() if not is_one_off(c.provider)}
    unrated = [i for i in published if i not in charges]
    out += _dead_letter_differences(
        Check.RATING, "charge topic", "records without a rated charge", unrated,
        sources.usage_dead_letters,
    )  # fmt: skip
    return out + _cost_differences(published, charges) + _kept_differences(sources, charges)


def _cost_differences(
    published: Mapping[str, Usage], charges: Mapping[str, Charge]
) -> list[Difference]:
    """Charges whose cost is not their record's billed cost, and charges of no record."""
    out: list[Difference] = []
    wrong_cost = [
        i
        for i, record in published.items()
        if i in charges
        and (charges[i].cost != record.billed_cost or charges[i].cost_currency != record.currency)
    ]
    if wrong_cost:
        out.append(
            Difference(
                Check.RATING,
                "charge topic",
                "charges whose cost is not their record's billed cost",
                _ids(wrong_cost),
            )
        )
    orphans = [c.charge_id for c in charges.values() if c.record_id not in published]
    if orphans:
        out.append(
            Difference(
                Check.RATING, "charge topic", "charges of no published record", _ids(orphans)
            )
        )
    return out


def _kept_differences(sources: Sources, charges: Mapping[str, Charge]) -> list[Difference]:
    """Charges rating did not keep (or kept at another price), and kept ones never
    published."""
    out: list[Difference] = []

    def kept_price(charge: Charge) -> Decimal | None:
        if charge.charge_id == charge.record_id:
            return sources.rated_prices.get(charge.charge_id)
        return sources.rating_corrections.get(charge.charge_id)

    not_kept = [
        c.charge_id for c in charges.values() if (kept := kept_price(c)) is None or kept != c.price
    ]
    if not_kept:
        out.append(
            Difference(
                Check.RATING,
                "rating store",
                "charges rating did not keep, or kept at another price",
                _ids(not_kept),
            )
        )
    kept_only = [i for i in sources.rated_prices if i not in charges]
    kept_only += [i for i in sources.rating_corrections if i not in charges]
    if kept_only:
        out.append(
            Difference(
                Check.RATING, "rating store", "kept by rating, never published", _ids(kept_only)
            )
        )
    return out


def check_invoicing(sources: Sources, charges: Mapping[str, Charge]) -> list[Difference]:
    """Every rated charge was stored once by invoicing, with its cost and price.

    Rule: a charge on the topic is stored under its id, cost and price equal to the nano, unless
    dead-lettered; a charge stored late went onto the next invoice; invoicing stores no charge
    of the period that the topic does not carry.
    """
    out: list[Difference] = []
    stored = {s.charge_id: s for s in sources.stored if s.period == sources.period}
    missing = [i for i in charges if i not in stored]
    out += _dead_letter_differences(
        Check.INVOICING, "invoicing store", "rated charges invoicing did not store", missing,
        sources.charge_dead_letters,
    )  # fmt: skip
    wrong = [
        i
        for i, s in stored.items()
        if i in charges
        and (
            _nanos(s.cost) != _nanos(charges[i].cost)
            or _nanos(s.price) != _nanos(charges[i].price)
            or s.customer_id != charges[i].customer_id
        )
    ]
    if wrong:
        out.append(
            Difference(
                Check.INVOICING,
                "invoicing store",
                "stored with another cost, price or customer than rated",
                _ids(wrong),
            )
        )
    extra = [i for i in stored if i not in charges]
    if extra:
        out.append(
            Difference(Check.INVOICING, "invoicing store", "stored but never rated", _ids(extra))
        )
    late: dict[str, list[str]] = defaultdict(list)
    for s in stored.values():
        if s.late:
            late[s.invoice_id].append(s.charge_id)
    out += [
        Difference(
            Check.INVOICING,
            invoice_id,
            f"charges of {sources.period} stored after its invoice was finalized",
            _ids(ids),
            Explanation.LATE,
        )
        for invoice_id, ids in sorted(late.items())
    ]
    return out


def invoice_lines_of(stored: Iterable[StoredCharge]) -> dict[str, dict[LineKey, LineSums]]:
    """Per invoice id, the lines its stored charges make (period, provider, service)."""
    lines: dict[str, dict[LineKey, LineSums]] = defaultdict(dict)
    for s in stored:
        key = (s.period, s.provider, s.service_name)
        invoice = lines[s.invoice_id]
        invoice[key] = invoice.get(key, NO_SUMS).plus(s.cost, s.price)
    return lines


def check_invoices(sources: Sources) -> list[Difference]:
    """An invoice's lines are the sums of the charges stored for it; its rounding holds.

    Rule: per (period, provider, service), the charge count, cost and exact price of the
    invoice's line = those of the charges stored for the invoice; a finalized invoice's rounded
    lines add up to its subtotal, each within one minor unit of its exact amount, and the
    subtotal is within half a minor unit of the exact sum; per tax rate, the exact tax is the
    rate of the exact base and is rounded within half a minor unit; the rates' exact bases add
    up to the exact lines and their taxes to the invoice's tax.
    """
    out: list[Difference] = []
    expected = invoice_lines_of(sources.stored)
    known = {i.invoice_id for i in sources.invoices}
    for invoice in sources.invoices:
        want = expected.get(invoice.invoice_id, {})
        for key in sorted(set(want) | set(invoice.lines)):
            got, should = invoice.lines.get(key, NO_SUMS), want.get(key, NO_SUMS)
            if (got.charges, got.cost, got.price) != (should.charges, should.cost, should.price):
                out.append(
                    Difference(
                        Check.INVOICE,
                        invoice.invoice_id,
                        f"line {' / '.join(key)}: {got.charges} charges, cost {got.cost}, "
                        f"price {got.price} on the {invoice.status} invoice; stored charges: "
                        f"{should.charges}, cost {should.cost}, price {should.price}",
                    )
                )
        out += _rounding(invoice)
    ours = [
        s.charge_id
        for s in sources.stored
        if s.invoice_id not in known
        and s.invoice_id.endswith(f":{sources.period}")
        and (sources.customer_id in (None, s.customer_id))
    ]
    if ours:
        out.append(
            Difference(
                Check.INVOICE, "invoices", "charges stored for an invoice that does not exist",
                _ids(ours),
            )
        )  # fmt: skip
    return out


def check_announcements(sources: Sources) -> list[Difference]:
    """Each finalized invoice was announced, with its subtotal and tax, and only it.

    Rule: an invoice past ``finalizing`` has an announcement on the invoice-finalized topic
    whose every copy carries the stored subtotal and tax; no invoice of the period is announced
    that invoicing does not hold finalized.
    """
    out: list[Difference] = []
    announced: dict[str, list[Announcement]] = defaultdict(list)
    for a in sources.announced:
        announced[a.invoice_id].append(a)
    finalized = {
        i.invoice_id: i
        for i in sources.invoices
        if i.status in ANNOUNCED_STATUSES and i.subtotal is not None
    }
    silent = [i for i in finalized if i not in announced]
    if silent:
        out.append(
            Difference(
                Check.INVOICE, "invoice topic", "finalized but never announced", _ids(silent)
            )
        )
    unknown = [i for i in announced if i not in finalized]
    if unknown:
        out.append(
            Difference(
                Check.INVOICE,
                "invoice topic",
                "announced but not a finalized invoice of the store",
                _ids(unknown),
            )
        )
    differing = [
        i
        for i, copies in announced.items()
        if i in finalized
        and any((a.subtotal, a.tax) != (finalized[i].subtotal, finalized[i].tax) for a in copies)
    ]
    if differing:
        out.append(
            Difference(
                Check.INVOICE,
                "invoice topic",
                "announced with another subtotal or tax than stored",
                _ids(differing),
            )
        )
    return out


def _rounding(invoice: InvoiceFigures) -> list[Difference]:
    if invoice.subtotal is None or invoice.currency is None:
        return []
    step = Decimal(1).scaleb(-minor_units(invoice.currency))
    exact = sum((e for e, _ in invoice.rounded), ZERO)
    rounded = sum((r for _, r in invoice.rounded), ZERO)
    problems = []
    if rounded != invoice.subtotal:
        problems.append(f"rounded lines add up to {rounded}, subtotal {invoice.subtotal}")
    if abs(invoice.subtotal - exact) * 2 > step:
        problems.append(f"subtotal {invoice.subtotal} is more than half a minor unit off {exact}")
    if any(abs(r - e) >= step for e, r in invoice.rounded):
        problems.append("a line is rounded by a minor unit or more")
    if invoice.taxes:
        bases = sum((t.base_exact for t in invoice.taxes), ZERO)
        if bases != exact:
            problems.append(f"taxed bases add up to {bases}, the exact lines to {exact}")
        for t in invoice.taxes:
            if t.base_exact * t.percent / 100 != t.tax_exact:
                problems.append(f"tax {t.label}: {t.tax_exact} is not {t.percent}% of its base")
            if abs(t.tax - t.tax_exact) * 2 > step:
                problems.append(f"tax {t.label}: {t.tax} is more than half a minor unit off")
        taxed = sum((t.tax for t in invoice.taxes), ZERO)
        if invoice.tax is not None and taxed != invoice.tax:
            problems.append(f"taxes per rate add up to {taxed}, the invoice's tax is {invoice.tax}")
    return [Difference(Check.INVOICE, invoice.invoice_id, p) for p in problems]


def account_figures(
    bills: Sequence[Bill],
    published: Mapping[str, Usage],
    charges: Mapping[str, Charge],
    stored: Mapping[str, StoredCharge],
) -> list[AccountFigures]:
    """Per bill and provider account: billed cost in the file, published, charged, stored."""
    rows: dict[tuple[str, str, str, str], list[Decimal]] = {}
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for bill in bills:
        for record_id, line in bill.lines.items():
            key = (bill.bill_id, line.provider, line.billing_account_id, line.currency)
            sums = rows.setdefault(key, [ZERO, ZERO, ZERO, ZERO])
            counts[key] += 1
            sums[0] += line.billed_cost
            if record_id in published:
                sums[1] += published[record_id].billed_cost
            if record_id in charges:
                sums[2] += charges[record_id].cost
            if record_id in stored:
                sums[3] += stored[record_id].cost
    return [
        AccountFigures(bill, provider, account, currency, counts[key], *sums)
        for key, sums in sorted(rows.items())
        for bill, provider, account, currency in [key]
    ]


def customer_figures(
    sources: Sources, charges: Mapping[str, Charge], stored: Sequence[StoredCharge]
) -> list[CustomerFigures]:
    """Per customer: the rated prices of the period (corrections included) against the lines
    of its invoices that carry them (late ones on the next invoice)."""
    rated: dict[tuple[str, str], list[Decimal]] = {}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for c in charges.values():
        key = (c.customer_id, c.currency)
        rated.setdefault(key, [ZERO, ZERO, ZERO])[0] += c.price
        counts[key] += 1
    currency = {c.charge_id: c.currency for c in charges.values()}
    for s in stored:
        if s.period != sources.period or s.charge_id not in currency:
            continue
        key = (s.customer_id, currency[s.charge_id])
        sums = rated.setdefault(key, [ZERO, ZERO, ZERO])
        sums[2 if s.late else 1] += s.price
    return [
        CustomerFigures(customer, cur, counts[(customer, cur)], *sums)
        for (customer, cur), sums in sorted(rated.items())
    ]


def for_customer(sources: Sources) -> Sources:
    """The sources narrowed to the customer asked for (all of them when none was).

    Records are the customer's when their charge is: a record never rated cannot be told apart
    by customer, so it is left to the reconciliation of the whole period.
    """
    customer = sources.customer_id
    if customer is None:
        return sources
    charges = [c for c in sources.charges if c.customer_id == customer]
    records = {c.record_id for c in charges}
    charge_ids = {c.charge_id for c in charges}
    bills = [
        replace(bill, lines={i: u for i, u in bill.lines.items() if i in records})
        for bill in sources.bills
    ]
    return replace(
        sources,
        bills=[b for b in bills if b.lines],
        usage=[u for u in sources.usage if u.record_id in records],
        charges=charges,
        rated_prices={i: p for i, p in sources.rated_prices.items() if i in records},
        rating_corrections={i: p for i, p in sources.rating_corrections.items() if i in charge_ids},
        stored=[s for s in sources.stored if s.customer_id == customer],
        invoices=[i for i in sources.invoices if i.customer_id == customer],
        announced=[a for a in sources.announced if a.invoice_id.rsplit(":", 1)[0] == customer],
    )


def reconcile(sources: Sources) -> Reconciliation:
    """Every comparison of the module docstring over one period's sources (narrowed to one
    customer if the sources name one: :func:`for_customer`)."""
    sources = for_customer(sources)
    published, conflicting = _first_copies(sources.usage)
    charges, charge_conflicts = _first_charges(sources.charges)
    differences = check_bills(sources.bills)
    if conflicting:
        differences.append(
            Difference(
                Check.USAGE, "usage topic", "record ids published with differing contents",
                _ids(conflicting),
            )
        )  # fmt: skip
    differences += check_usage(sources, published)
    differences += check_upstream(sources)
    differences += check_unreadable(sources)
    if charge_conflicts:
        differences.append(
            Difference(
                Check.RATING, "charge topic", "charge ids published with differing contents",
                _ids(charge_conflicts),
            )
        )  # fmt: skip
    differences += check_rating(sources, published, charges)
    differences += check_invoicing(sources, charges)
    differences += check_invoices(sources)
    differences += check_announcements(sources)
    stored_now = [s for s in sources.stored if s.period == sources.period]
    counts = {
        "bills": len(sources.bills),
        "bill_lines": sum(len(b.lines) for b in sources.bills),
        "rows_rejected": sum(b.rows_rejected for b in sources.bills),
        "records_published": len(published),
        "copies_published": len(sources.usage),
        "upstream_accepted": sum(1 for u in published.values() if u.bill_id is None),
        "upstream_duplicates": sum(1 for u in sources.usage if u.bill_id is None)
        - sum(1 for u in published.values() if u.bill_id is None),
        "upstream_conflicts": sum(1 for _, v in sources.upstream_refused if v == "conflict"),
        "records_dead_lettered": sum(1 for i in published if i in sources.usage_dead_letters),
        "charges_rated": len(charges),
        "charges_stored": len(stored_now),
        "charges_late": sum(1 for s in stored_now if s.late),
        "invoices": len(sources.invoices),
        "invoices_finalized": sum(1 for i in sources.invoices if i.subtotal is not None),
    }
    return Reconciliation(
        period=sources.period,
        customer_id=sources.customer_id,
        counts=counts,
        accounts=account_figures(
            sources.bills, published, charges, {s.charge_id: s for s in stored_now}
        ),
        customers=customer_figures(sources, charges, stored_now),
        differences=differences,
    )


def period_reconciled(result: Reconciliation, checked_at: datetime) -> PeriodReconciled | None:
    """The verdict to publish: a whole period's, once per run (the run's time in its id).

    A run narrowed to one customer publishes nothing: its records are a part of the period,
    and whether that part adds up says nothing of whether the period reconciles.
    """
    if result.customer_id is not None:
        return None
    verdict = ReconcileVerdict(
        period=result.period,
        reconciles=result.reconciles,
        differences=len(result.differences),
        unexplained=len(result.unexplained),
        checked_at=checked_at,
    )
    return PeriodReconciled.create(
        verdict,
        source="billing-reconcile",
        correlation_id=f"reconcile:{result.period}",
        event_id=f"period-reconciled:{result.period}:{checked_at.isoformat()}",
        occurred_at=checked_at,
    )
