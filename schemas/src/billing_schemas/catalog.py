"""The catalog: who the customers are, what they own and how they are priced.

The catalog is applied declaratively (``billing catalog apply FILE.yaml``) by invoicing, which
owns it; rating reads accounts and price lists from it and notify reads contacts. The collection
names and document shapes here are that shared contract.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from billing_schemas.money import CurrencyCode
from billing_schemas.pricing import FxRate, PriceList, Rebilling

__all__ = ["FxRate", "PriceList", "Rebilling"]  # the pricing documents are part of the catalog

CUSTOMERS = "catalog_customers"
ACCOUNTS = "catalog_accounts"
INVOICING_ENTITIES = "catalog_invoicing_entities"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactRole(StrEnum):
    """Roles a contact can hold (a contact may hold several)."""

    BILLING = "Billing"
    TECH = "Tech"
    DPO = "DPO"


class Contact(_Model):
    """A person or mailbox of a customer; invoices go to contacts holding the Billing role."""

    email: EmailStr
    name: str | None = None
    roles: list[ContactRole] = Field(default_factory=list)
    primary: bool = False


class CloudAccount(_Model):
    """A provider account (AWS account, Azure subscription, OCI tenancy, OpenStack project)."""

    provider: str
    account_id: str
    name: str | None = None
    price_list: str | None = Field(
        default=None, description="Id of a price list overriding the customer's for this account."
    )

    @property
    def key(self) -> str:
        """The account's catalog key, ``provider:account_id``."""
        return account_key(self.provider, self.account_id)


def account_key(provider: str, account_id: str) -> str:
    """The key of a cloud account in the catalog: provider and account id."""
    return f"{provider}:{account_id}"


class Address(_Model):
    """A postal address."""

    lines: list[str] = Field(min_length=1)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class Customer(_Model):
    """A customer we invoice."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str
    address: Address
    vat_id: str | None = None
    currency: CurrencyCode
    payment_terms_days: int = Field(default=30, ge=0)
    language: str = "en"
    invoicing_entity: str
    accounts: list[CloudAccount] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    price_list: str | PriceList = Field(
        description="Id of a price list of the catalog, or a price list written inline."
    )
    rebilling: Rebilling = Field(default_factory=Rebilling)

    @property
    def price_list_id(self) -> str:
        """The id of the customer's price list."""
        return self.price_list if isinstance(self.price_list, str) else self.price_list.id

    def billing_contacts(self) -> list[Contact]:
        """Contacts holding the Billing role."""
        return [c for c in self.contacts if ContactRole.BILLING in c.roles]


class PaymentMethod(_Model):
    """A way to pay an invoicing entity."""

    kind: str
    details: str


class InvoicingEntity(_Model):
    """The seller: who issues the invoices, and its number series."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str
    address: Address
    vat_id: str | None = None
    number_prefix: str = Field(pattern=r"^[A-Z0-9-]*$")
    email: EmailStr
    payment_methods: list[PaymentMethod] = Field(default_factory=list)


class Catalog(_Model):
    """A whole catalog file."""

    invoicing_entities: list[InvoicingEntity] = Field(default_factory=list)
    price_lists: list[PriceList] = Field(default_factory=list)
    fx_rates: list[FxRate] = Field(default_factory=list)
    customers: list[Customer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:
        entities = {e.id for e in self.invoicing_entities}
        price_lists = {p.id: p for p in self.price_lists}
        if len(price_lists) != len(self.price_lists):
            msg = "price_lists: two price lists share an id"
            raise ValueError(msg)
        owners: dict[str, str] = {}
        for customer in self.customers:
            if customer.invoicing_entity not in entities:
                msg = (
                    f"customer {customer.id!r}: invoicing_entity {customer.invoicing_entity!r} "
                    "is not defined in invoicing_entities"
                )
                raise ValueError(msg)
            wanted = [(f"customer {customer.id!r}", customer.price_list)]
            wanted += [
                (f"customer {customer.id!r}: account {a.key!r}", a.price_list)
                for a in customer.accounts
                if a.price_list is not None
            ]
            for where, ref in wanted:
                price_list = price_lists.get(ref) if isinstance(ref, str) else ref
                if price_list is None:
                    msg = f"{where}: price_list {ref!r} is not defined in price_lists"
                    raise ValueError(msg)
                if price_list.currency not in (None, customer.currency):
                    msg = (
                        f"{where}: price list {price_list.id!r} has amounts in "
                        f"{price_list.currency} but the customer is invoiced in "
                        f"{customer.currency}"
                    )
                    raise ValueError(msg)
            for account in customer.accounts:
                if account.key in owners:
                    msg = (
                        f"customer {customer.id!r}: account {account.key!r} already belongs to "
                        f"customer {owners[account.key]!r}"
                    )
                    raise ValueError(msg)
                owners[account.key] = customer.id
        return self
