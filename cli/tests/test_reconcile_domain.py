"""The reconciliation's comparisons, on hand-made sources: a clean period, then one planted
difference at a time."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from billing_cli.reconcile.domain import (
    Announcement,
    Bill,
    Charge,
    Check,
    Difference,
    Explanation,
    InvoiceFigures,
    LineSums,
    Reconciliation,
    Sources,
    StoredCharge,
    TaxFigures,
    Usage,
    reconcile,
)

PERIOD = "2024-09"
D = Decimal


def usage(record_id: str, cost: str, *, bill: str | None = "bill-1", account: str = "111") -> Usage:
    return Usage(record_id, bill, "aws", "payer", account, "USD", D(cost))


def charge(record_id: str, cost: str, price: str, customer: str = "acme") -> Charge:
    return Charge(record_id, record_id, customer, "aws", "EC2", D(cost), "USD", D(price), "USD")


def stored(c: Charge, *, late: bool = False, period: str = PERIOD) -> StoredCharge:
    invoice_period = "2024-10" if late else period
    return StoredCharge(
        c.charge_id, c.customer_id, f"{c.customer_id}:{invoice_period}", period, c.provider,
        c.service_name, c.cost, c.price, late,
    )  # fmt: skip


def clean() -> Sources:
    """One bill of two lines, each published, rated, kept, stored and on acme's draft."""
    lines = {"r1": usage("r1", "10.000000001"), "r2": usage("r2", "2.5")}
    charges = [charge("r1", "10.000000001", "11.0000000011"), charge("r2", "2.5", "2.75")]
    bill = Bill(
        bill_id="bill-1",
        file_name="bill.csv",
        status="processed",
        billed_cost={"USD": D("12.500000001")},
        rows_accepted=2,
        rows_rejected=0,
        kept_cost={"USD": D("12.500000001")},
        kept_lines=2,
        lines=lines,
    )
    draft = InvoiceFigures(
        invoice_id=f"acme:{PERIOD}",
        customer_id="acme",
        period=PERIOD,
        status="draft",
        currency="USD",
        lines={(PERIOD, "aws", "EC2"): LineSums(2, D("12.500000001"), D("13.7500000011"))},
    )
    return Sources(
        period=PERIOD,
        bills=[bill],
        usage=list(lines.values()),
        charges=charges,
        rated_prices={c.charge_id: c.price for c in charges},
        stored=[stored(c) for c in charges],
        invoices=[draft],
    )


def unexplained(result: Reconciliation) -> list[Difference]:
    return result.unexplained


def test_a_clean_period_reconciles_with_no_difference() -> None:
    result = reconcile(clean())
    assert result.reconciles
    assert result.differences == []
    [account] = result.accounts
    assert (account.lines, account.billed, account.published, account.charged, account.stored) == (
        2, D("12.500000001"), D("12.500000001"), D("12.500000001"), D("12.500000001"),
    )  # fmt: skip
    [customer] = result.customers
    assert (customer.rated, customer.invoiced, customer.late) == (
        D("13.7500000011"), D("13.7500000011"), D(0)
    )  # fmt: skip


def test_a_charge_deleted_from_invoicings_store_is_named() -> None:
    sources = clean()
    sources = replace(sources, stored=[s for s in sources.stored if s.charge_id != "r2"])
    result = reconcile(sources)
    assert not result.reconciles
    missing = [d for d in result.unexplained if d.check is Check.INVOICING]
    assert [d.records for d in missing] == [("r2",)]
    # and the draft's line no longer matches the charges stored for it
    assert [d.subject for d in result.unexplained if d.check is Check.INVOICE] == [f"acme:{PERIOD}"]


def test_a_record_published_twice_with_different_ids_is_named() -> None:
    sources = clean()
    twin = replace(sources.usage[0], record_id="r1-again")
    twin_charge = replace(sources.charges[0], charge_id="r1-again", record_id="r1-again")
    sources = replace(
        sources,
        usage=[*sources.usage, twin],
        charges=[*sources.charges, twin_charge],
        rated_prices={**sources.rated_prices, "r1-again": twin_charge.price},
        stored=[*sources.stored, stored(twin_charge)],
    )
    result = reconcile(sources)
    assert not result.reconciles
    named = {d.what: d.records for d in result.unexplained}
    assert named["published but not a line of any loaded bill"] == ("r1-again",)


def test_a_dead_lettered_record_of_an_unknown_account_is_explained() -> None:
    sources = clean()
    stray = usage("r3", "1", account="999")
    bill = replace(
        sources.bills[0],
        lines={**sources.bills[0].lines, "r3": stray},
        rows_accepted=3,
        kept_lines=3,
        billed_cost={"USD": D("13.500000001")},
        kept_cost={"USD": D("13.500000001")},
    )
    error = "no customer owns account 'aws|999': add it to the catalog, then replay"
    result = reconcile(
        replace(sources, bills=[bill], usage=[*sources.usage, stray],
                usage_dead_letters={"r3": error})
    )  # fmt: skip
    assert result.reconciles
    [difference] = result.differences
    assert difference.explanation is Explanation.UNKNOWN_ACCOUNT
    assert difference.records == ("r3",)
    assert difference.detail == error


def test_a_record_neither_rated_nor_dead_lettered_is_unexplained() -> None:
    sources = clean()
    sources = replace(
        sources,
        charges=sources.charges[:1],
        rated_prices={"r1": sources.charges[0].price},
        stored=sources.stored[:1],
    )
    result = reconcile(sources)
    assert [(d.check, d.records) for d in result.unexplained][:1] == [(Check.RATING, ("r2",))]


def test_rejected_rows_are_listed_and_explained_unless_some_were_not_kept() -> None:
    sources = clean()
    bill = replace(sources.bills[0], rows_rejected=1, rejected_rows=["row 4 (BilledCost): bad"])
    result = reconcile(replace(sources, bills=[bill]))
    assert result.reconciles
    [difference] = result.differences
    assert (difference.explanation, difference.records) == (
        Explanation.REJECTED,
        ("row 4 (BilledCost): bad",),
    )
    lost = replace(bill, rows_rejected=2)
    assert [d.what for d in reconcile(replace(sources, bills=[lost])).unexplained] == [
        "2 rows rejected, 1 kept"
    ]


def test_a_registry_total_that_its_lines_do_not_make_is_unexplained() -> None:
    sources = clean()
    bill = replace(sources.bills[0], billed_cost={"USD": D("12.500000002")})
    [difference] = reconcile(replace(sources, bills=[bill])).unexplained
    assert difference.check is Check.BILL


def test_a_late_charge_on_the_next_invoice_is_explained() -> None:
    sources = clean()
    late = stored(sources.charges[1], late=True)
    draft = replace(
        sources.invoices[0],
        lines={(PERIOD, "aws", "EC2"): LineSums(1, D("10.000000001"), D("11.0000000011"))},
    )
    result = reconcile(replace(sources, stored=[sources.stored[0], late], invoices=[draft]))
    assert result.reconciles
    [difference] = result.differences
    assert (difference.explanation, difference.subject, difference.records) == (
        Explanation.LATE,
        "acme:2024-10",
        ("r2",),
    )
    [customer] = result.customers
    assert (customer.invoiced, customer.late) == (D("11.0000000011"), D("2.75"))


def test_a_reversal_of_a_restated_line_is_explained_and_an_unknown_one_is_not() -> None:
    sources = clean()
    reversal = replace(usage("r9~rev", "-1", bill="bill-2"), corrects_record_id="r9")
    sources = replace(sources, usage=[*sources.usage, reversal], usage_dead_letters={
        "r9~rev": "no customer owns account 'aws|111'"
    })  # fmt: skip
    assert [d.explanation for d in reconcile(sources).unexplained] == [None]
    result = reconcile(replace(sources, restated_ids=frozenset({"r9"})))
    assert result.reconciles
    assert {d.explanation for d in result.differences} == {
        Explanation.REVERSAL,
        Explanation.UNKNOWN_ACCOUNT,
    }


def test_a_charge_invoicing_dead_lettered_is_explained() -> None:
    sources = clean()
    draft = replace(
        sources.invoices[0],
        lines={(PERIOD, "aws", "EC2"): LineSums(1, D("10.000000001"), D("11.0000000011"))},
    )
    sources = replace(sources, stored=sources.stored[:1], invoices=[draft])
    assert [d.records for d in reconcile(sources).unexplained] == [("r2",)]
    result = reconcile(replace(sources, charge_dead_letters={"r2": "boom"}))
    assert result.reconciles
    [difference] = result.differences
    assert (difference.explanation, difference.records) == (Explanation.DEAD_LETTERED, ("r2",))


def test_a_record_published_twice_with_different_contents_is_unexplained() -> None:
    sources = clean()
    changed = replace(sources.usage[0], billed_cost=D("99"))
    result = reconcile(replace(sources, usage=[*sources.usage, changed]))
    assert ("record ids published with differing contents", ("r1",)) in [
        (d.what, d.records) for d in result.unexplained
    ]


def test_upstream_records_need_an_accepted_event() -> None:
    sources = clean()
    event = usage("u1", "0.5", bill=None)
    sources = replace(sources, usage=[*sources.usage, event], usage_dead_letters={"u1": "x"})
    assert [d.records for d in reconcile(sources).unexplained] == [("u1",)]
    accepted = replace(sources, upstream_ids=frozenset({"u1"}), usage=[*sources.usage, event])
    result = reconcile(replace(accepted, upstream_refused=[("meter:e9", "conflict")]))
    assert result.reconciles
    [refused] = [d for d in result.differences if d.subject == "upstream events"]
    assert (refused.explanation, refused.records) == (Explanation.REJECTED, ("meter:e9",))
    counts = result.counts
    assert (counts["upstream_accepted"], counts["upstream_duplicates"]) == (1, 1)
    assert counts["upstream_conflicts"] == 1


def test_a_price_rating_did_not_keep_is_unexplained() -> None:
    sources = clean()
    result = reconcile(replace(sources, rated_prices={"r1": D("11.0000000011"), "r2": D("2.7")}))
    [difference] = result.unexplained
    assert (difference.check, difference.records) == (Check.RATING, ("r2",))


def test_a_correction_charge_is_compared_with_ratings_corrections() -> None:
    sources = clean()
    correction = Charge("r2:rerated:2", "r2", "acme", "aws", "EC2", D(0), "USD", D("0.25"), "USD")
    sources = replace(sources, charges=[*sources.charges, correction])
    assert next(d.records for d in reconcile(sources).unexplained) == ("r2:rerated:2",)


def test_finalized_invoice_rounding_is_checked() -> None:
    sources = clean()
    final = replace(
        sources.invoices[0],
        status="finalized",
        rounded=[(D("13.7500000011"), D("13.75"))],
        subtotal=D("13.75"),
        tax=D(0),
    )
    announced = [Announcement(f"acme:{PERIOD}", "A-1", D("13.75"), D(0))]
    sources = replace(sources, announced=announced)
    assert reconcile(replace(sources, invoices=[final])).reconciles
    off = replace(final, rounded=[(D("13.7500000011"), D("13.76"))], subtotal=D("13.76"))
    whats = [d.what for d in reconcile(replace(sources, invoices=[off])).unexplained]
    assert whats == [
        "subtotal 13.76 is more than half a minor unit off 13.7500000011",
        "announced with another subtotal or tax than stored",
    ]


def test_a_finalized_invoice_is_announced_once_with_its_figures() -> None:
    sources = clean()
    final = replace(
        sources.invoices[0],
        status="finalized",
        rounded=[(D("13.7500000011"), D("13.75"))],
        subtotal=D("13.75"),
        tax=D(0),
    )
    sources = replace(sources, invoices=[final])
    assert [(d.what, d.records) for d in reconcile(sources).unexplained] == [
        ("finalized but never announced", (f"acme:{PERIOD}",))
    ]
    stray = Announcement(f"globex:{PERIOD}", "A-2", D(1), D(0))
    right = Announcement(f"acme:{PERIOD}", "A-1", D("13.75"), D(0))
    result = reconcile(replace(sources, announced=[right, right, stray]))
    assert [(d.what, d.records) for d in result.unexplained] == [
        ("announced but not a finalized invoice of the store", (f"globex:{PERIOD}",))
    ]
    # frozen, not yet announced: nothing to say yet
    assert reconcile(replace(sources, invoices=[replace(final, status="finalizing")])).reconciles


def test_one_customer_is_reconciled_alone() -> None:
    sources = clean()
    other = charge("r2", "2.5", "3", customer="globex")
    sources = replace(
        sources,
        customer_id="acme",
        charges=[sources.charges[0], other],
        rated_prices={"r1": sources.charges[0].price, "r2": other.price},
        stored=[sources.stored[0], stored(other)],
        invoices=[
            replace(
                sources.invoices[0],
                lines={(PERIOD, "aws", "EC2"): LineSums(1, D("10.000000001"), D("11.0000000011"))},
            )
        ],
    )
    result = reconcile(sources)
    assert result.reconciles
    assert [c.customer_id for c in result.customers] == ["acme"]
    assert result.counts["records_published"] == 1


def test_a_message_that_is_no_record_is_explained_only_by_its_dead_letter() -> None:
    where = "billing.usage.recorded.v1/0/7"
    result = reconcile(replace(clean(), unreadable={where: None}))
    assert [(d.what, d.records) for d in result.unexplained] == [
        ("messages that are no usage record or rated charge", (where,))
    ]
    result = reconcile(replace(clean(), unreadable={where: "not valid JSON"}))
    assert result.reconciles
    [difference] = result.differences
    assert (difference.explanation, difference.detail) == (
        Explanation.DEAD_LETTERED,
        "not valid JSON",
    )


def test_finalized_invoice_taxes_are_checked_per_rate() -> None:
    sources = clean()
    vat = TaxFigures("VAT 20%", D(20), D("13.7500000011"), D("2.75000000022"), D("2.75"))
    final = replace(
        sources.invoices[0],
        status="finalizing",  # not announced yet
        rounded=[(D("13.7500000011"), D("13.75"))],
        subtotal=D("13.75"),
        taxes=[vat],
        tax=D("2.75"),
    )
    assert reconcile(replace(sources, invoices=[final])).reconciles
    wrong = replace(final, taxes=[replace(vat, tax=D("2.76"))], tax=D("2.76"))
    whats = [d.what for d in reconcile(replace(sources, invoices=[wrong])).unexplained]
    assert whats == ["tax VAT 20%: 2.76 is more than half a minor unit off"]
    partial = replace(final, taxes=[replace(vat, base_exact=D(13), tax_exact=D("2.6"))])
    whats = [d.what for d in reconcile(replace(sources, invoices=[partial])).unexplained]
    assert whats == [
        "taxed bases add up to 13, the exact lines to 13.7500000011",
        "tax VAT 20%: 2.75 is more than half a minor unit off",
    ]


def test_a_one_off_charge_is_explained_as_the_operators() -> None:
    # 2 x 150.00 USD added by an operator: on the charge topic and acme's draft, no bill line
    sources = clean()
    setup = Charge(
        "one-off:acme:T-1", "one-off:acme:T-1", "acme", "one-off", "Setup fee", D(0), "USD",
        D("300.00"), "USD",
    )  # fmt: skip
    draft = sources.invoices[0]
    lines = dict(draft.lines) | {(PERIOD, "one-off", "Setup fee"): LineSums(1, D(0), D(300))}
    result = reconcile(
        replace(
            sources,
            charges=[*sources.charges, setup],
            stored=[*sources.stored, stored(setup)],
            invoices=[replace(draft, lines=lines)],
        )
    )
    assert result.reconciles
    [difference] = result.differences
    assert (difference.explanation, difference.records) == (
        Explanation.ONE_OFF,
        ("one-off:acme:T-1",),
    )
