"""Hostile and awkward charges sent to the running invoicing service (issue 13, items 3 and
11): an amount no storage holds is dead-lettered with its reason while its neighbours go on; an
IDR invoice worth about a million US dollars (beyond int64 nanos) is stored and issued; charges
in another currency than the invoice's keep it in draft, the marker dead-lettered saying why."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from einvoice_check import validate_issued
from invoicing_test_support import rated
from pymongo import AsyncMongoClient

from billing_devtools.testing import TopicReader, produce
from billing_schemas.events import ChargeRated, PeriodClose, PeriodClosing, RatedCharge
from billing_schemas.topics import Topic, dead_letter_name, topic_name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CATALOG: dict[str, Any] = {
    "invoicing_entities": [
        {
            "id": "cumulus",
            "name": "Cumulus Cloud Resellers GmbH",
            "address": {
                "lines": ["Wolkenstrasse 7"],
                "country": "DE",
                "city": "Berlin",
                "postal_code": "10115",
            },
            "vat_id": "DE123456788",
            # XRechnung needs the seller's telephone (BR-DE-6), Peppol both participant ids
            "phone": "+49 30 1234567",
            "peppol_participant_id": "9930:DE123456788",
            "number_prefix": "CCR-",
            "email": "billing@cumulus.example",
        }
    ],
    "tax_rates": [{"country": "DE", "percent": "19"}],
    "price_lists": [{"id": "p", "versions": [{"version": 1, "effective_from": "2024-01-01"}]}],
    "customers": [
        {
            "id": "nusantara",
            "name": "PT Nusantara",
            "address": {
                "lines": ["Jalan Sudirman 1"],
                "country": "ID",
                "city": "Jakarta",
                "postal_code": "10220",
            },
            "contacts": [{"email": "ap@nusantara.example", "name": "AP", "roles": ["Billing"]}],
            "peppol_participant_id": "0088:5798000000001",
            "currency": "IDR",
            "invoicing_entity": "cumulus",
            "price_list": "p",
        },
        {
            "id": "mixed",
            "name": "Mixed GmbH",
            "address": {"lines": ["Weg 1"], "country": "DE"},
            "currency": "EUR",
            "invoicing_entity": "cumulus",
            "price_list": "p",
        },
    ],
}


def charge(charge_id: str, customer: str, price: str, currency: str) -> RatedCharge:
    return rated(charge_id, customer, price=price, cost=price).model_copy(
        update={"currency": currency, "cost_currency": currency}
    )


def message(c: RatedCharge) -> tuple[bytes, bytes]:
    event = ChargeRated.create(c, source="test", correlation_id=c.charge_id)
    return c.customer_id.encode(), event.model_dump_json().encode()


def marker(customer: str) -> tuple[bytes, bytes]:
    close = PeriodClose(customer_id=customer, period="2024-09", issue_date=date(2024, 10, 1))
    event = PeriodClosing.create(close, source="test", correlation_id=f"close:{customer}")
    return customer.encode(), event.model_dump_json().encode()


async def test_bad_charges_are_dead_lettered_and_large_idr_amounts_are_invoiced(
    pipeline: Any, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(CATALOG))
    await pipeline.billing("catalog", "apply", str(catalog))
    await pipeline.start("invoicing")
    servers, ns = pipeline.infra.kafka_bootstrap_servers, f"{pipeline.namespace}."
    # 20 billion rupiah (about 1.2 million US dollars) is 2e19 nanos, beyond int64; 1E+20 IDR
    # is beyond what any storage of the currency holds (and any real invoice)
    async with TopicReader(servers, dead_letter_name(Topic.CHARGE_RATED, ns)) as dead:
        await produce(
            servers,
            topic_name(Topic.CHARGE_RATED, ns),
            [
                message(charge("n-1", "nusantara", "20000000000.50", "IDR")),
                message(charge("n-2", "nusantara", "1E+20", "IDR")),
                message(charge("n-3", "nusantara", "1000.25", "IDR")),
                message(charge("m-1", "mixed", "100.00", "EUR")),
                message(charge("m-2", "mixed", "40.00", "USD")),
                marker("nusantara"),
                marker("mixed"),
            ],
        )
        letters = await dead.wait_for(2, within=120)

    errors = {bytes(dict(r.headers)["x-error"]).decode() for r in letters}
    [overflow] = [e for e in errors if "n-2" in e or "too large" in e]
    assert "amount too large to store: 100000000000000000000 IDR is beyond" in overflow
    [mismatch] = [e for e in errors if e is not overflow]
    assert "cannot close mixed:2024-09 in EUR: 1 charge in USD (price 40.00 USD)" in mismatch
    assert "(charges m-2)" in mismatch

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(pipeline.infra.mongodb_url)
    try:
        invoices = client[pipeline.namespace]["invoicing_invoices"]
        for _ in range(600):
            issued = await invoices.find_one({"_id": "nusantara:2024-09", "status": "finalized"})
            if issued is not None and issued.get("published_at"):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the IDR invoice was never issued")
        # 20000000000.50 + 1000.25 = 20000001000.75 -> 20000001000.75 (IDR has 2 decimals);
        # no VAT (outside the scope of EU VAT); stored in units of 10^-5 rupiah
        assert issued["document"]["total"] == "20000001000.75"
        assert issued["total_units"] == 2_000_000_100_075_000
        assert Decimal(issued["document"]["lines"][0]["amount"]) == Decimal("20000001000.75")
        stored = client[pipeline.namespace]["invoicing_charges"]
        assert sorted(await stored.distinct("_id", {"customer_id": "nusantara"})) == ["n-1", "n-3"]
        mixed = await invoices.find_one({"_id": "mixed:2024-09"})
        assert mixed is not None
        assert mixed["status"] == "draft"
        # the IDR invoice, in the three e-invoice formats, validated (issue 17)
        await validate_issued(
            client[pipeline.namespace], tmp_path, "invoicing_hostile_charges_e2e", expect=1
        )
    finally:
        await client.close()
    assert pipeline.processes["invoicing"].returncode is None  # still running
