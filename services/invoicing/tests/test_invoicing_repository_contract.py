"""One contract for the invoice repository: the tests of :class:`RepositoryContract` run on the
in-memory fake and on FerretDB (a subclass per backend, each providing ``repo``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from invoicing_test_support import issue, rated
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.invoice_repo import SETTLEMENT_WRITES, MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceRepository, InMemorySettlementRecords
from billing_invoicing.adapters.settlement_repo import MongoSettlementRepository
from billing_invoicing.domain.credit import CreditEntry, CreditKind, balances
from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.domain.model import Invoice, StreamPosition, ledger_of
from billing_invoicing.domain.settlement import CreditNoteRecord, PaymentRecord
from billing_invoicing.ports import (
    ChargeToStore,
    ConcurrentUpdateError,
    InvoiceRepository,
    SettlementRecords,
)
from billing_invoicing.service.draft_invoices import PositionedCharge, add_charges


class RepositoryContract:
    """What every invoice repository does."""

    async def test_a_charge_is_stored_once_and_a_repeat_says_where_it_stands(
        self, repo: InvoiceRepository
    ) -> None:
        charge = rated("c1", price="3.25")
        [first] = await repo.store_charges(
            [ChargeToStore(charge, "alpha:2024-09", False, StreamPosition(2, 40))]
        )
        [again] = await repo.store_charges(
            [ChargeToStore(charge, "alpha:2024-10", True, StreamPosition(2, 90))]
        )
        assert (first.new, again.new) == (True, False)
        assert (again.invoice_id, again.position) == ("alpha:2024-09", StreamPosition(2, 40))
        assert again.amounts == first.amounts
        assert first.amounts.price == Decimal("3.25")
        assert (await repo.has_charge("c1"), await repo.has_charge("c2")) == (True, False)

    async def test_a_large_batch_says_for_each_charge_whether_it_was_stored_before(
        self, repo: InvoiceRepository
    ) -> None:
        # more charges than one insert carries, a third of them stored before, one twice in
        # the batch, and ids with U+0000 (stored as U+FFFD on PostgreSQL's JSONB)
        def item(charge_id: str, partition: int, offset: int) -> ChargeToStore:
            position = StreamPosition(partition, offset)
            return ChargeToStore(rated(charge_id), "alpha:2024-09", False, position)

        ids = [f"c{i}" for i in range(1_200)] + ["nul\x00a", "nul\x00b"]
        before = [item(charge_id, 0, n) for n, charge_id in enumerate(ids) if n % 3 == 0]
        assert all(s.new for s in await repo.store_charges(before))
        batch = [item(charge_id, 1, n) for n, charge_id in enumerate(ids)] + [item("c5", 1, 9999)]
        stored = await repo.store_charges(batch)
        assert [s.new for s in stored] == [n % 3 != 0 for n in range(len(ids))] + [False]
        assert [s.position for s in stored] == [
            StreamPosition(0 if n % 3 == 0 else 1, n) for n in range(len(ids))
        ] + [StreamPosition(1, 5)]
        again = await repo.store_charges([item("nul\x00b", 2, 1)])
        assert [(s.new, s.position) for s in again] == [(False, StreamPosition(1, len(ids) - 1))]

    async def test_an_invoice_reads_back_as_saved_and_a_second_first_write_is_refused(
        self, repo: InvoiceRepository
    ) -> None:
        await add_charges(
            repo,
            [
                PositionedCharge(rated("c1", price="1.10"), StreamPosition(0, 1)),
                PositionedCharge(rated("c2", price="2.20", service="S3"), StreamPosition(1, 5)),
            ],
        )
        loaded = await repo.get("alpha:2024-09")
        assert loaded is not None
        assert (loaded.version, loaded.status) == (1, InvoiceStatus.DRAFT)
        sums = await repo.draft_sums("alpha:2024-09")
        assert sums is not None
        assert (sums.charge_count, sums.total, sums.currency) == (2, Decimal("3.30"), "EUR")
        n = ledger_of("alpha")
        ledger = (await repo.get_ledgers([n]))[n]
        assert (ledger.counted_through, ledger.version) == ({0: 1, 1: 5}, 1)
        assert await repo.get_many(["alpha:2024-09", "nobody:2024-09"]) == {"alpha:2024-09": loaded}

        loaded.start_finalizing(date(2024, 10, 1), sums)
        await repo.save(loaded)
        assert loaded.version == 2
        await repo.forget(["alpha:2024-09"])
        fresh = await repo.get("alpha:2024-09")
        assert fresh is not None
        assert (fresh.status, fresh.issue_date, fresh.version) == (
            InvoiceStatus.FINALIZING,
            date(2024, 10, 1),
            2,
        )
        assert [g.price for g in fresh.charge_groups()] == [Decimal("1.10"), Decimal("2.20")]
        with pytest.raises(ConcurrentUpdateError):
            await repo.save(Invoice.new("alpha:2024-09"))  # a second first write

    async def test_numbers_are_gapless_and_a_retry_gets_its_own(
        self, repo: InvoiceRepository
    ) -> None:
        a = await repo.claim_number(entity="e", year=2024, invoice_id="a:2024-09")
        b = await repo.claim_number(entity="e", year=2024, invoice_id="b:2024-09")
        again = await repo.claim_number(entity="e", year=2024, invoice_id="a:2024-09")
        other = await repo.claim_number(entity="e", year=2025, invoice_id="c:2024-12")
        assert (a, b, again, other) == (1, 2, 1, 1)

    async def test_a_stale_ledger_save_is_refused(self, repo: InvoiceRepository) -> None:
        first = (await repo.get_ledgers([3]))[3]
        rival = (await repo.get_ledgers([3]))[3]
        await repo.save_ledger(first)
        with pytest.raises(ConcurrentUpdateError):
            await repo.save_ledger(rival)
        await repo.forget_ledgers([3])
        assert (await repo.get_ledgers([3]))[3].version == 1

    async def test_publication_is_remembered_and_customers_of_a_period_listed(
        self, repo: InvoiceRepository
    ) -> None:
        for invoice_id in ("beta:2024-09", "alpha:2024-09", "alpha:2024-10"):
            await repo.save(Invoice.new(invoice_id))
        assert await repo.customers_with_invoices("2024-09") == ["alpha", "beta"]
        assert not await repo.is_published("alpha:2024-09")
        await repo.mark_published("alpha:2024-09")
        assert await repo.is_published("alpha:2024-09")

    async def test_an_issued_invoice_is_found_by_number_and_a_stale_settlement_is_refused(
        self, repo: InvoiceRepository
    ) -> None:
        await issue_into(repo)
        assert await repo.issued("nothing") is None
        by_number = await repo.issued("CCR-2024-000001")
        by_id = await repo.issued("alpha:2024-09")
        assert by_number is not None
        assert by_id == by_number
        assert by_number.document is not None
        assert by_number.document.total == Decimal("119.00")
        rival = await repo.issued("CCR-2024-000001")
        assert rival is not None
        by_number.record_payment(payment("pay-1", "19.00"))
        await repo.save_settlement(by_number)
        rival.record_payment(payment("pay-2", "5.00"))
        with pytest.raises(ConcurrentUpdateError):
            await repo.save_settlement(rival)  # loaded before pay-1 was saved
        fresh = await repo.issued("alpha:2024-09")
        assert fresh is not None
        assert (fresh.paid, fresh.payment_ids, fresh.status, fresh.version) == (
            Decimal("19.00"),
            ["pay-1"],
            InvoiceStatus.PARTIALLY_PAID,
            by_number.version,
        )

    async def test_open_invoices_due_before_a_day(self, repo: InvoiceRepository) -> None:
        await issue_into(repo)  # due 2024-10-31
        assert await repo.open_due_before(date(2024, 10, 31)) == []
        [due] = await repo.open_due_before(date(2024, 11, 1))
        due.record_payment(payment("pay-1", "119.00"))
        await repo.save_settlement(due)
        assert await repo.open_due_before(date(2024, 11, 1)) == []  # paid


async def issue_into(repo: InvoiceRepository) -> None:
    """The use-case tests' issued invoice (119.00 EUR, due 2024-10-31), in any repository."""
    await issue(repo)


def payment(payment_id: str, amount: str) -> PaymentRecord:
    return PaymentRecord(
        payment_id, "alpha:2024-09", "CCR-2024-000001", "alpha", Decimal(amount), "EUR", "Card",
        payment_id, date(2024, 10, 20),
    )  # fmt: skip


class RecordsContract:
    """What every settlement record store does."""

    async def test_payments_and_notes_are_recorded_once_and_marked(
        self, records: SettlementRecords
    ) -> None:
        first, new = await records.add_payment(payment("pay-1", "10.00"))
        again, renew = await records.add_payment(payment("pay-1", "99.00"))
        assert (new, renew, again.amount, again.published) == (True, False, Decimal("10.00"), False)
        assert await records.fix_outstanding_after("pay-1", Decimal("109.00")) == Decimal("109.00")
        assert await records.fix_outstanding_after("pay-1", Decimal("1.00")) == Decimal("109.00")
        await records.payment_published("pay-1")
        [stored] = await records.payments_of("alpha:2024-09")
        assert (stored.published, stored.outstanding_after, stored.paid_on) == (
            True,
            Decimal("109.00"),
            date(2024, 10, 20),
        )
        assert first.payment_id == stored.payment_id
        note = CreditNoteRecord(
            "alpha:2024-09:cn:1", "CN-1", "alpha:2024-09", "CCR-2024-000001", "alpha", "EUR",
            Decimal("11.90"), Decimal("1.90"), Decimal("10.00"), "SLA", False, date(2024, 11, 2),
        )  # fmt: skip
        assert (await records.add_credit_note(note))[1]
        assert not (await records.add_credit_note(note))[1]
        await records.credit_note_published(note.credit_note_id)
        [kept] = await records.credit_notes_of("alpha:2024-09")
        assert kept == CreditNoteRecord(**{**note.__dict__, "published": True})

    async def test_the_credit_ledger_adds_up_per_currency(self, records: SettlementRecords) -> None:
        def entry(entry_id: str, amount: str, currency: str = "EUR") -> CreditEntry:
            kind = CreditKind.APPLIED if amount.startswith("-") else CreditKind.OVERPAYMENT
            return CreditEntry(entry_id, "alpha", currency, Decimal(amount), kind, "why", "a:1")

        assert await records.add_credit(entry("overpayment:p1", "11.00"))
        assert not await records.add_credit(entry("overpayment:p1", "11.00"))
        assert await records.add_credit(entry("applied:a:2", "-4.50"))
        assert await records.add_credit(entry("overpayment:p2", "1000", "JPY"))
        ledger = await records.credits_of("alpha")
        assert [e.entry_id for e in ledger] == ["overpayment:p1", "applied:a:2", "overpayment:p2"]
        assert balances(ledger) == {"EUR": Decimal("6.50"), "JPY": Decimal("1000")}
        assert await records.balances_of("alpha") == balances(ledger)
        assert await records.balances_of("beta") == {}
        assert [e.kind for e in ledger] == [
            CreditKind.OVERPAYMENT,
            CreditKind.APPLIED,
            CreditKind.OVERPAYMENT,
        ]
        assert await records.credits_of("beta") == []


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def repo(self) -> InvoiceRepository:
        return InMemoryInvoiceRepository()


class TestInMemoryRecords(RecordsContract):
    @pytest.fixture
    def records(self) -> SettlementRecords:
        return InMemorySettlementRecords()


@pytest.mark.integration
class TestMongoRecords(RecordsContract):
    @pytest.fixture
    async def records(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> SettlementRecords:
        mongo = MongoSettlementRepository(mongo_db)
        await mongo.ensure_indexes()
        return mongo


@pytest.mark.integration
class TestMongoRepository(RepositoryContract):
    @pytest.fixture
    async def repo(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> InvoiceRepository:
        mongo = MongoInvoiceRepository(mongo_db)
        await mongo.ensure_indexes()
        return mongo


@pytest.mark.integration
async def test_a_settlement_write_stored_but_not_applied_is_applied_by_the_next_reader(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    repo = MongoInvoiceRepository(mongo_db)
    await repo.ensure_indexes()
    await issue_into(repo)
    invoice = await repo.issued("CCR-2024-000001")
    assert invoice is not None
    invoice.record_payment(payment("pay-1", "19.00"))
    # a writer that crashed after storing its write, before applying it to the invoice
    original = repo._invoices.update_one

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError

    repo._invoices.update_one = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await repo.save_settlement(invoice)
    repo._invoices.update_one = original  # type: ignore[method-assign]
    assert await mongo_db[SETTLEMENT_WRITES].count_documents({}) == 1

    fresh = await repo.issued("CCR-2024-000001")
    assert fresh is not None
    assert (fresh.paid, fresh.payment_ids) == (Decimal("19.00"), ["pay-1"])
    doc = await mongo_db["invoicing_invoices"].find_one({"_id": "alpha:2024-09"})
    assert doc is not None
    assert (doc["paid_units"], doc["status"]) == (19_000_000_000, "partially_paid")
