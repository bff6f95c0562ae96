"""The catalog: who the customers are, what they own and how they are priced.

The catalog is applied declaratively (``billing catalog apply FILE.yaml``) by invoicing, which
owns it; rating reads accounts and price lists from it and notify reads contacts. The collection
names and document shapes here are that shared contract.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from billing_schemas.money import CurrencyCode, WireDecimal

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

    @property
    def key(self) -> str:
        """The account's catalog key, ``provider:account_id``."""
        return account_key(self.provider, self.account_id)


def account_key(provider: str, account_id: str) -> str:
    """The key of a cloud account in the catalog: provider and account id."""
    return f"{provider}:{account_id}"


class PriceList(_Model):
    """How a customer is priced. The walking skeleton knows one rule: a markup on cost."""

    id: str
    version: int = Field(default=1, ge=1)
    markup_percent: WireDecimal = Field(default=Decimal(0), ge=Decimal(-100))


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
    price_list: PriceList

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
    customers: list[Customer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:
        entities = {e.id for e in self.invoicing_entities}
        owners: dict[str, str] = {}
        for customer in self.customers:
            if customer.invoicing_entity not in entities:
                msg = (
                    f"customer {customer.id!r}: invoicing_entity {customer.invoicing_entity!r} "
                    "is not defined in invoicing_entities"
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
