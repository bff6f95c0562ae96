"""The catalog: who the customers are, what they own and how they are priced.

The catalog is applied declaratively (``billing catalog apply FILE.yaml``) through invoicing;
rating reads accounts and price lists from it, ingest the customers' currencies and notify the
contacts. These models are the documents of the shared kernel; :mod:`billing_catalog.store`
keeps them.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, model_validator
from stdnum import vatin
from stdnum.exceptions import ValidationError as NumberError

from billing_catalog.pricing import FxRate, PriceList, Rebilling
from billing_schemas.money import CurrencyCode, WireDecimal

__all__ = ["FxRate", "PriceList", "Rebilling"]  # the pricing documents are part of the catalog


COUNTRY_PATTERN = r"^[A-Z]{2}$"
PEPPOL_ID_PATTERN = r"^[0-9]{4}:[^\s:]+$"
"""A Peppol participant id: its ISO 6523 scheme (ICD, four digits) and the id, ``0088:...``."""


def vat_id_problem(vat_id: str) -> str | None:
    """Why a VAT id is invalid, or None: its country prefix, format and check digits, checked
    with python-stdnum (``stdnum.vatin``: every country it knows, EU ones with ``EL`` for
    Greece)."""
    try:
        vatin.validate(vat_id)
    except NumberError as exc:
        return f"VAT id {vat_id!r} is not valid: {exc}"
    return None


MAX_NAME_LENGTH = 200


def _printable(name: str) -> str:
    """Refuse control characters (line breaks above all): a name goes into email headers
    (a contact's display name, the seller's From), where a line break would start a header
    of its own, and onto PDFs."""
    bad = sorted({f"U+{ord(c):04X}" for c in name if unicodedata.category(c) == "Cc"})
    if bad:
        msg = f"a name must not contain control characters ({', '.join(bad)})"
        raise ValueError(msg)
    return name


Name = Annotated[str, Field(max_length=MAX_NAME_LENGTH), AfterValidator(_printable)]
"""A person's or company's name: one line of printable text, at most 200 characters."""


class EInvoiceFormat(StrEnum):
    """Structured e-invoice formats a customer can receive (docs/einvoice.md)."""

    FACTURX = "facturx"  # Factur-X / ZUGFeRD PDF (replaces the plain PDF)
    XRECHNUNG = "xrechnung"  # German CIUS, CII
    PEPPOL = "peppol"  # Peppol BIS Billing 3.0, UBL


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
    name: Name | None = None
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
    country: str = Field(pattern=COUNTRY_PATTERN, description="ISO 3166-1 alpha-2")
    city: str | None = Field(default=None, description="For e-invoices (XRechnung needs it).")
    postal_code: str | None = Field(
        default=None, description="Structured e-invoices (XRechnung needs it)."
    )


class Proration(StrEnum):
    """How a plan charges a subscription active for only part of a period (docs/catalog.md)."""

    DAILY = "daily"  # the default: the days it was active, at each day's quantity
    NONE = "none"  # the whole period, at the quantity in force on its first active day


class Plan(_Model):
    """A subscription plan: a recurring fee per period, which may include an amount of
    pre-purchased cloud infrastructure (netted against the period's cloud charges)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str
    currency: CurrencyCode
    fee: WireDecimal = Field(ge=Decimal(0), description="Recurring fee per billing period.")
    included_infrastructure: WireDecimal = Field(
        default=Decimal(0),
        ge=Decimal(0),
        description="Cloud charges (at the customer's prices) included in the fee, per period.",
    )
    proration: Proration = Field(
        default=Proration.DAILY,
        description="daily: a subscription active for part of a period pays (and includes) "
        "its active days; none: the whole period.",
    )


class QuantityChange(_Model):
    """A subscription's quantity from a day on."""

    effective_from: date = Field(description="First day at the new quantity.")
    quantity: int = Field(ge=1)


class Subscription(_Model):
    """A customer's subscription to a plan, for the periods it overlaps."""

    plan: str
    quantity: int = Field(default=1, ge=1, description="The quantity from ``start`` on.")
    start: date
    end: date | None = Field(default=None, description="Exclusive; none: until cancelled.")
    quantity_changes: list[QuantityChange] = Field(
        default_factory=list,
        description="Later quantities, each from its day on (after start, before end, in order).",
    )

    @model_validator(mode="after")
    def _check_dates(self) -> Subscription:
        if self.end is not None and self.end <= self.start:
            msg = f"end {self.end} is not after start {self.start}"
            raise ValueError(msg)
        previous = self.start
        for n, change in enumerate(self.quantity_changes):
            day = change.effective_from
            if day <= previous:
                after = "start" if n == 0 else f"quantity_changes[{n - 1}]"
                msg = (
                    f"quantity_changes[{n}]: effective_from {day} is not after {after} "
                    f"{previous} (changes are listed in order, one per day)"
                )
                raise ValueError(msg)
            if self.end is not None and day >= self.end:
                msg = f"quantity_changes[{n}]: effective_from {day} is not before end {self.end}"
                raise ValueError(msg)
            previous = day
        return self

    def quantity_on(self, day: date) -> int:
        """The quantity in force on ``day`` (the last change on or before it, else the
        starting quantity)."""
        quantity = self.quantity
        for change in self.quantity_changes:
            if change.effective_from <= day:
                quantity = change.quantity
        return quantity


class UnderusePolicy(StrEnum):
    """What a customer gets when it uses less than its plans include."""

    NO_DISCOUNT = "no_discount"  # the default: the unused part is not refunded
    CREDIT = "credit"  # the unused part is credited on the invoice


class OverusePolicy(StrEnum):
    """What happens to cloud charges beyond what the plans include."""

    BILL = "bill"  # the default: the overage is invoiced
    WAIVE = "waive"  # the overage is not invoiced


class IncludedInfrastructurePolicy(_Model):
    """How the pre-purchased infrastructure of a customer's plans is netted (per customer)."""

    underuse: UnderusePolicy = UnderusePolicy.NO_DISCOUNT
    overuse: OverusePolicy = OverusePolicy.BILL


class TaxRate(_Model):
    """A country's VAT (or sales tax) rate, in percent, from a date on."""

    country: str = Field(pattern=COUNTRY_PATTERN, description="ISO 3166-1 alpha-2")
    percent: WireDecimal = Field(ge=Decimal(0), le=Decimal(100))
    effective_from: date = date(1970, 1, 1)
    name: str = "VAT"

    @property
    def key(self) -> str:
        """The rate's catalog key, ``country:effective_from``."""
        return f"{self.country}:{self.effective_from.isoformat()}"


class Customer(_Model):
    """A customer we invoice."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: Name
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
    subscriptions: list[Subscription] = Field(default_factory=list)
    included_infrastructure: IncludedInfrastructurePolicy = Field(
        default_factory=IncludedInfrastructurePolicy
    )
    einvoice: list[EInvoiceFormat] = Field(
        default_factory=list, description="Structured e-invoice formats the customer receives."
    )
    einvoice_buyer_reference: str | None = Field(
        default=None, description="Buyer reference (BT-10) on e-invoices: e.g. a Leitweg-ID."
    )
    peppol_participant_id: str | None = Field(
        default=None, pattern=PEPPOL_ID_PATTERN, description="``scheme:id``, e.g. ``0088:...``."
    )

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
    name: Name
    address: Address
    vat_id: str | None = None
    number_prefix: str = Field(pattern=r"^[A-Z0-9-]*$")
    email: EmailStr
    payment_methods: list[PaymentMethod] = Field(default_factory=list)
    phone: str | None = Field(default=None, description="Seller contact on e-invoices.")
    peppol_participant_id: str | None = Field(default=None, pattern=PEPPOL_ID_PATTERN)


class Catalog(_Model):
    """A whole catalog file."""

    invoicing_entities: list[InvoicingEntity] = Field(default_factory=list)
    price_lists: list[PriceList] = Field(default_factory=list)
    fx_rates: list[FxRate] = Field(default_factory=list)
    tax_rates: list[TaxRate] = Field(default_factory=list)
    plans: list[Plan] = Field(default_factory=list)
    customers: list[Customer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_vat_ids(self) -> Catalog:
        """A VAT id is refused, with its reason, when its format or check digits are wrong."""
        vat_ids = [(f"invoicing entity {e.id!r}", e.vat_id) for e in self.invoicing_entities]
        vat_ids += [(f"customer {c.id!r}", c.vat_id) for c in self.customers]
        for where, vat_id in vat_ids:
            problem = vat_id_problem(vat_id) if vat_id else None
            if problem:
                msg = f"{where}: {problem}"
                raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:  # noqa: PLR0912 - one check after another
        entities = {e.id for e in self.invoicing_entities}
        for what, ids in (
            ("invoicing entities", [e.id for e in self.invoicing_entities]),
            ("customers", [c.id for c in self.customers]),
        ):
            # applied one after the other, the second would silently replace the first
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                msg = f"{what}: two {what} share the id {twice[0]!r}"
                raise ValueError(msg)
        fx_keys = [r.key for r in self.fx_rates]
        if len(set(fx_keys)) != len(fx_keys):
            base, quote, as_of = next(k for k in fx_keys if fx_keys.count(k) > 1).split(":")
            msg = f"fx_rates: two fx_rates of {base}->{quote} share the as_of date {as_of}"
            raise ValueError(msg)
        price_lists = {p.id: p for p in self.price_lists}
        if len(price_lists) != len(self.price_lists):
            msg = "price_lists: two price lists share an id"
            raise ValueError(msg)
        plans = {p.id: p for p in self.plans}
        if len(plans) != len(self.plans):
            msg = "plans: two plans share an id"
            raise ValueError(msg)
        rate_keys = [r.key for r in self.tax_rates]
        if len(set(rate_keys)) != len(rate_keys):
            msg = "tax_rates: two rates of one country share an effective_from date"
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
                for other in price_list.versions_not_in(customer.currency):
                    msg = (
                        f"{where}: price list {price_list.id!r} version {other.version} has "
                        f"amounts in {other.currency} but the customer is invoiced in "
                        f"{customer.currency}"
                    )
                    raise ValueError(msg)
            for n, subscription in enumerate(customer.subscriptions):
                plan = plans.get(subscription.plan)
                if plan is None:
                    msg = (
                        f"customer {customer.id!r}: subscriptions[{n}]: plan "
                        f"{subscription.plan!r} is not defined in plans"
                    )
                    raise ValueError(msg)
                if plan.currency != customer.currency:
                    msg = (
                        f"customer {customer.id!r}: subscriptions[{n}]: plan {plan.id!r} is in "
                        f"{plan.currency} but the customer is invoiced in {customer.currency}"
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
