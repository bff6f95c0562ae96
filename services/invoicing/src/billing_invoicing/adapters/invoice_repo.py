"""Rated charges, invoices and invoice numbers in MongoDB / FerretDB.

Only single-document atomic writes are used (FerretDB has no transactions), and each step is
safe to repeat, so a crash at any point is recovered by running the same step again:

* a charge is stored once under its charge id (``$setOnInsert``): redelivery changes nothing;
* a draft's lines are recomputed from its charges by aggregation (exact ``$sum`` of integers),
  never incremented, so a replayed batch cannot count twice;
* an invoice is finalized by the consumer of the customer's partition of the charge stream, when
  it meets the period-close marker there (see ``PeriodClosing``): the charges stored by then are
  exactly the invoice's, and a charge for an invoice no longer in draft goes onto the customer's
  next open invoice as a late line (``late: true``). No charge is ever updated after it is
  written (FerretDB v1 updates documents one by one, slowly);
* a number is claimed by inserting ``<entity>:<year>:<seq>`` with a unique ``invoice_id``:
  the sequence is gapless (seq n+1 is only tried once n exists) and a retry finds its own claim.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from billing_invoicing.domain.invoice import (
    ChargeGroup,
    Invoice,
    InvoiceStatus,
    invoice_id_for,
)
from billing_runtime.mongo import sum_by
from billing_schemas.events import LineType, RatedCharge
from billing_schemas.money import from_fixed_units, to_fixed_units

CHARGES = "invoicing_charges"
INVOICES = "invoicing_invoices"
NUMBERS = "invoicing_numbers"

Doc = dict[str, Any]


def next_period(period: str) -> str:
    """The period after ``YYYY-MM``."""
    year, month = (int(p) for p in period.split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def savings_removed(charge: RatedCharge) -> Decimal:
    """What savings removal kept on a charge: on-demand price minus billed cost, converted.

    Rating charges usage covered by a payer-bought commitment at its on-demand cost (basis
    ``on-demand cost`` on a ``commitment_covered`` line); the difference to the billed cost is
    the saving the reseller keeps (step 4 of the invoice, shown on it).
    """
    if (
        charge.line_type is not LineType.COMMITMENT_COVERED
        or charge.basis != "on-demand cost"
        or charge.basis_amount is None
    ):
        return Decimal(0)
    return (charge.basis_amount - charge.cost) * (charge.fx_rate or Decimal(1))


def charge_document(charge: RatedCharge, invoice_id: str) -> Doc:
    """A rated charge as stored: money as integer fixed units, quantities as strings."""
    return {
        "invoice_id": invoice_id,
        "customer_id": charge.customer_id,
        "period": charge.billing_period,
        "provider": charge.provider,
        "sub_account_id": charge.sub_account_id,
        "service_name": charge.service_name,
        "sku_id": charge.sku_id,
        "description": charge.description,
        "region": charge.region,
        "charge_category": charge.charge_category.value,
        "line_type": charge.line_type.value,
        "charge_period_start": charge.charge_period_start,
        "quantity": None if charge.quantity is None else format(charge.quantity, "f"),
        "unit": charge.unit,
        "cost_units": to_fixed_units(charge.cost),
        "cost_currency": charge.cost_currency,
        "price_units": to_fixed_units(charge.price),
        "margin_units": to_fixed_units(charge.margin),
        "currency": charge.currency,
        "savings_removed_units": to_fixed_units(savings_removed(charge)),
        "fx_rate": None if charge.fx_rate is None else format(charge.fx_rate, "f"),
        "basis": charge.basis,
        "rule": charge.rule,
        "price_list_id": charge.price_list_id,
        "price_list_version": charge.price_list_version,
        "record_id": charge.record_id,
        "late": False,
        "received_at": datetime.now(UTC),
    }


class MongoInvoiceRepository:
    """Charges, drafts, finalized invoices and number claims."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._charges = db[CHARGES]
        self._invoices = db[INVOICES]
        self._numbers = db[NUMBERS]

    async def ensure_indexes(self) -> None:
        """Indexes every query here relies on (idempotent)."""
        await self._charges.create_index([("invoice_id", ASCENDING)])
        await self._charges.create_index([("period", ASCENDING), ("customer_id", ASCENDING)])
        await self._numbers.create_index([("invoice_id", ASCENDING)], unique=True)
        await self._numbers.create_index(
            [("entity", ASCENDING), ("year", ASCENDING), ("seq", DESCENDING)]
        )
        await self._invoices.create_index([("period", ASCENDING), ("status", ASCENDING)])

    # --- charges and drafts ---------------------------------------------------------------

    async def store_charges(self, charges: Iterable[RatedCharge]) -> set[str]:
        """Store charges once each; return the invoice ids they were put on.

        Called by the one consumer of the customers' partition, in partition order, so no
        finalization of these customers runs meanwhile.
        """
        charges = list(charges)
        if not charges:
            return set()
        wanted = {invoice_id_for(c.customer_id, c.billing_period) for c in charges}
        closed = {
            doc["_id"]
            async for doc in self._invoices.find(
                {"_id": {"$in": sorted(wanted)}, "status": {"$ne": InvoiceStatus.DRAFT.value}},
                {"_id": 1},
            )
        }
        # late charges of one closed invoice all go to the same open one: look it up once
        next_open = {
            invoice_id: await self.open_invoice_after(invoice_id.rsplit(":", 1)[0], invoice_id)
            for invoice_id in sorted(closed)
        }
        docs = []
        touched: set[str] = set()
        for charge in charges:
            invoice_id = invoice_id_for(charge.customer_id, charge.billing_period)
            doc = charge_document(charge, invoice_id)
            if invoice_id in closed:
                doc.update(invoice_id=next_open[invoice_id], late=True)
            touched.add(doc["invoice_id"])
            docs.append({"_id": charge.charge_id, **doc})
        try:
            await self._charges.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            # a redelivered charge is already stored: that duplicate is the point of the _id
            others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise
        return touched

    async def open_invoice_after(self, customer_id: str, invoice_id: str) -> str:
        """The first invoice of the customer after ``invoice_id``'s period still in draft."""
        period = invoice_id.rsplit(":", 1)[1]
        while True:
            period = next_period(period)
            candidate = invoice_id_for(customer_id, period)
            doc = await self._invoices.find_one({"_id": candidate}, {"status": 1})
            if doc is None or doc["status"] == InvoiceStatus.DRAFT.value:
                return candidate

    async def charge_groups(self, invoice_id: str) -> list[ChargeGroup]:
        """Exact sums of an invoice's charges per usage period, provider and service.

        The period tells the invoice's own charges from late ones of earlier periods.
        """
        sums = await sum_by(
            self._charges,
            {"invoice_id": invoice_id},
            ["period", "provider", "service_name"],
            ["cost_units", "price_units", "savings_removed_units"],
        )
        return [
            ChargeGroup(
                period=period,
                provider=provider,
                service_name=service_name,
                charge_count=row.get("count", 0),
                cost=from_fixed_units(row.get("cost_units", 0)),
                price=from_fixed_units(row.get("price_units", 0)),
                savings_removed=from_fixed_units(row.get("savings_removed_units", 0)),
            )
            for (period, provider, service_name), row in sorted(sums.items())
        ]

    async def refresh_draft(self, invoice_id: str) -> None:
        """Recompute a draft's lines from its charges (idempotent); finalized ones are left."""
        customer_id, period = invoice_id.rsplit(":", 1)
        groups = await self.charge_groups(invoice_id)
        lines = [
            {
                "period": g.period,
                "provider": g.provider,
                "service_name": g.service_name,
                "charge_count": g.charge_count,
                "cost_units": to_fixed_units(g.cost),
                "price_units": to_fixed_units(g.price),
            }
            for g in groups
        ]
        # DuplicateKeyError: the invoice left draft meanwhile, its content is fixed
        with contextlib.suppress(DuplicateKeyError):
            await self._invoices.update_one(
                {"_id": invoice_id, "status": InvoiceStatus.DRAFT.value},
                {
                    "$set": {
                        "draft_lines": lines,
                        "currency": await self._invoice_currency(invoice_id),
                        "updated_at": datetime.now(UTC),
                    },
                    "$setOnInsert": {
                        "customer_id": customer_id,
                        "period": period,
                        "created_at": datetime.now(UTC),
                    },
                },
                upsert=True,
            )

    async def _invoice_currency(self, invoice_id: str) -> str | None:
        charge = await self._charges.find_one({"invoice_id": invoice_id}, {"currency": 1})
        return None if charge is None else str(charge["currency"])

    async def customers_with_charges(self, period: str) -> list[str]:
        """Customers that have an invoice (draft or not) for the period."""
        ids = await self._invoices.distinct("customer_id", {"period": period})
        return sorted(str(i) for i in ids)

    # --- finalization ---------------------------------------------------------------------

    async def invoice(self, invoice_id: str) -> Doc | None:
        """The stored invoice document."""
        return await self._invoices.find_one({"_id": invoice_id})

    async def start_finalizing(self, invoice_id: str, issue_date: date) -> Doc:
        """Move a draft (or a period with no draft yet) to ``finalizing``, fixing its issue date.

        Returns the document; one already past draft is returned as it is, so a finalization
        that crashed half-way resumes with the issue date it had.
        """
        customer_id, period = invoice_id.rsplit(":", 1)
        with contextlib.suppress(DuplicateKeyError):  # not in draft: keep what is there
            await self._invoices.update_one(
                {"_id": invoice_id, "status": InvoiceStatus.DRAFT.value},
                {
                    "$set": {"status": "finalizing", "issue_date": issue_date.isoformat()},
                    "$setOnInsert": {"customer_id": customer_id, "period": period},
                },
                upsert=True,
            )
        doc = await self.invoice(invoice_id)
        assert doc is not None
        return doc

    async def claim_number(self, *, entity: str, year: int, invoice_id: str) -> int:
        """The invoice's sequence number in its entity's series for the year (gapless)."""
        while True:
            mine = await self._numbers.find_one({"invoice_id": invoice_id})
            if mine is not None:
                return int(mine["seq"])
            last = await self._numbers.find_one(
                {"entity": entity, "year": year}, sort=[("seq", DESCENDING)]
            )
            seq = 1 if last is None else int(last["seq"]) + 1
            try:
                await self._numbers.insert_one(
                    {
                        "_id": f"{entity}:{year}:{seq:09d}",
                        "entity": entity,
                        "year": year,
                        "seq": seq,
                        "invoice_id": invoice_id,
                        "claimed_at": datetime.now(UTC),
                    }
                )
            except DuplicateKeyError:
                continue  # another finalizer took seq (or we did, in a retry): look again
            return seq

    async def finalize(self, invoice: Invoice, *, seq: int, pdf_file_id: str, sha: str) -> None:
        """Write the finalized invoice (idempotent)."""
        assert invoice.number is not None
        await self._invoices.update_one(
            {"_id": invoice.invoice_id, "status": "finalizing"},
            {
                "$set": {
                    "status": InvoiceStatus.FINALIZED.value,
                    "number": invoice.number,
                    "seq": seq,
                    "currency": invoice.currency,
                    "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
                    "subtotal_units": to_fixed_units(invoice.subtotal),
                    "tax_units": to_fixed_units(invoice.tax),
                    "total_units": to_fixed_units(invoice.total),
                    "outstanding_units": to_fixed_units(invoice.outstanding),
                    "document": invoice.model_dump(mode="json"),
                    "pdf_file_id": pdf_file_id,
                    "pdf_sha256": sha,
                    "finalized_at": datetime.now(UTC),
                }
            },
        )

    async def mark_published(self, invoice_id: str) -> None:
        """Remember that InvoiceFinalized was acknowledged by the broker."""
        await self._invoices.update_one(
            {"_id": invoice_id}, {"$set": {"published_at": datetime.now(UTC)}}
        )

    async def list_invoices(
        self, *, period: str | None = None, customer_id: str | None = None
    ) -> list[Doc]:
        """Invoices, newest period first, then by customer."""
        query: Doc = {}
        if period:
            query["period"] = period
        if customer_id:
            query["customer_id"] = customer_id
        cursor = self._invoices.find(query).sort([("period", -1), ("customer_id", 1)])
        return [doc async for doc in cursor]

    async def find_invoices(self, query: Doc, *, offset: int, limit: int) -> list[Doc]:
        """Invoices matching ``query`` (a MongoDB filter), newest period first, then by customer
        and id (a stable order for paging), without their assembled document."""
        cursor = (
            self._invoices.find(query, {"document": 0})
            .sort([("period", DESCENDING), ("customer_id", ASCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def margin_sums(
        self, period: str, customer_id: str | None = None
    ) -> dict[tuple[Any, ...], dict[str, int]]:
        """Exact sums of cost, price and margin of the period's charges (usage period, late
        ones included) per customer, service, invoice currency and cost currency."""
        match: Doc = {"period": period}
        if customer_id:
            match["customer_id"] = customer_id
        return await sum_by(
            self._charges,
            match,
            ["customer_id", "service_name", "currency", "cost_currency"],
            ["cost_units", "price_units", "margin_units"],
        )

    async def charges_of(self, invoice_id: str) -> AsyncIterator[Doc]:
        """Every charge on an invoice (its own and late ones), in a stable order."""
        cursor = self._charges.find({"invoice_id": invoice_id}).sort(
            [("period", ASCENDING), ("provider", ASCENDING), ("service_name", ASCENDING),
             ("_id", ASCENDING)]
        )  # fmt: skip
        async for doc in cursor:
            yield doc
