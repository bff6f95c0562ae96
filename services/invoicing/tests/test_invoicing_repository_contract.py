"""One contract for the invoice repository: the tests of :class:`RepositoryContract` run on the
in-memory fake and on FerretDB (a subclass per backend, each providing ``repo``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from invoicing_test_support import rated
from pymongo.asynchronous.database import AsyncDatabase

from billing_invoicing.adapters.invoice_repo import MongoInvoiceRepository
from billing_invoicing.adapters.memory import InMemoryInvoiceRepository
from billing_invoicing.domain.invoice import InvoiceStatus
from billing_invoicing.domain.model import Invoice, StreamPosition, ledger_of
from billing_invoicing.ports import ChargeToStore, ConcurrentUpdateError, InvoiceRepository
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


class TestInMemoryRepository(RepositoryContract):
    @pytest.fixture
    def repo(self) -> InvoiceRepository:
        return InMemoryInvoiceRepository()


@pytest.mark.integration
class TestMongoRepository(RepositoryContract):
    @pytest.fixture
    async def repo(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> InvoiceRepository:
        mongo = MongoInvoiceRepository(mongo_db)
        await mongo.ensure_indexes()
        return mongo
