"""The catalog store on the real database: what ``apply`` writes is what each reader gets back,
and the single-document edits (contacts, language) are compare-and-set."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from billing_catalog.models import Catalog, Contact, ContactRole
from billing_catalog.pricing import PriceList
from billing_catalog.store import (
    AccountEntry,
    CatalogConflictError,
    MongoCatalogStore,
)

pytestmark = pytest.mark.integration

ENTITY = {
    "id": "e",
    "name": "E",
    "address": {"lines": ["x"], "country": "DE"},
    "number_prefix": "E-",
    "email": "e@example.com",
}


def _customer(cid: str, currency: str, price_list: Any, *accounts: dict[str, str]) -> Any:
    return {
        "id": cid,
        "name": cid.title(),
        "address": {"lines": ["x"], "country": "DE"},
        "currency": currency,
        "invoicing_entity": "e",
        "price_list": price_list,
        "accounts": list(accounts),
        "contacts": [{"name": "Ann", "email": f"ann@{cid}.example", "roles": ["Billing"]}],
    }


CATALOG = Catalog.model_validate(
    {
        "invoicing_entities": [ENTITY],
        "price_lists": [
            {
                "id": "std",
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2024-01-01",
                        "rules": [{"kind": "markup", "percent": "10"}],
                    }
                ],
            },
            {"id": "other", "versions": [{"version": 1, "effective_from": "2024-01-01"}]},
        ],
        "fx_rates": [
            {"base": "USD", "quote": "EUR", "as_of": "2024-09-01", "rate": "0.90"},
            {"base": "GBP", "quote": "JPY", "as_of": "2024-09-01", "rate": "190"},
        ],
        "customers": [
            _customer(
                "acme",
                "EUR",
                "std",
                {"provider": "AWS", "account_id": "1"},
                {"provider": "AWS", "account_id": "2", "price_list": "other"},
            ),
            _customer(
                "beta",
                "CHF",
                {"id": "beta-own", "versions": [{"version": 1, "effective_from": "2024-01-01"}]},
                {"provider": "OpenStack", "account_id": "p-1"},
            ),
        ],
    }
)


@pytest.fixture
async def store(mongo_db: AsyncDatabase[dict[str, Any]]) -> MongoCatalogStore:
    store = MongoCatalogStore(mongo_db)
    result = await store.apply(CATALOG)
    assert (result.customers, result.accounts, result.price_lists) == (2, 3, 2)
    return store


async def test_each_reader_gets_back_what_apply_wrote(store: MongoCatalogStore) -> None:
    revision = await store.revision()
    assert revision is not None
    assert await store.accounts(None) == {
        "AWS:1": AccountEntry("AWS:1", "acme", "AWS", None),
        "AWS:2": AccountEntry("AWS:2", "acme", "AWS", "other"),
        "OpenStack:p-1": AccountEntry("OpenStack:p-1", "beta", "OpenStack", None),
    }
    assert (await store.accounts(["AWS:2", "AWS:404"])).keys() == {"AWS:2"}
    terms = await store.pricing_terms(None)
    assert (terms["acme"].currency, terms["acme"].price_list) == ("EUR", "std")
    inline = terms["beta"].price_list
    assert isinstance(inline, PriceList)
    assert inline.id == "beta-own"
    assert (await store.pricing_terms(["beta"])).keys() == {"beta"}
    assert (await store.price_lists(None)).keys() == {"std", "other"}
    assert (await store.price_lists(["other", "gone"])).keys() == {"other"}
    [rate] = await store.fx_rates({"USD", "EUR"})
    assert (rate.base, rate.quote, rate.rate) == ("USD", "EUR", Decimal("0.90"))
    assert await store.invoicing_currencies("AWS") == {"EUR"}
    assert await store.invoicing_currencies("Azure") == set()
    customer = await store.customer("acme")
    assert customer is not None
    assert customer.name == "Acme"
    assert await store.customer("nobody") is None
    entity = await store.invoicing_entity("e")
    assert entity is not None
    assert entity.number_prefix == "E-"
    assert await store.subscribed_customers() == []


async def test_applying_the_same_file_again_changes_nothing(store: MongoCatalogStore) -> None:
    before = await store.revision()
    await store.apply(CATALOG)
    assert await store.revision() == before  # nothing written: readers keep their cache


async def test_contacts_are_replaced_only_if_unchanged_since_read(
    store: MongoCatalogStore,
) -> None:
    read = await store.contacts("acme")
    assert read is not None
    new = [Contact(name="Bo", email="bo@acme.example", roles=[ContactRole.BILLING])]
    assert await store.replace_contacts("acme", read, new)
    assert not await store.replace_contacts("acme", read, [])  # stale: someone changed them
    assert await store.contacts("acme") == new
    assert await store.contacts("nobody") is None
    assert await store.set_language("acme", "de")
    assert not await store.set_language("nobody", "de")
    customer = await store.customer("acme")
    assert customer is not None
    assert customer.language == "de"


async def test_a_price_list_version_in_effect_may_not_change(store: MongoCatalogStore) -> None:
    changed = CATALOG.model_copy(
        update={
            "price_lists": [
                PriceList.model_validate(
                    {
                        "id": "std",
                        "versions": [
                            {
                                "version": 1,
                                "effective_from": "2024-01-01",
                                "rules": [{"kind": "markup", "percent": "12"}],
                            }
                        ],
                    }
                )
            ]
        }
    )
    with pytest.raises(CatalogConflictError):
        await store.apply(changed)
