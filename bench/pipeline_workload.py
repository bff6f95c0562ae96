"""The pipeline benchmark's workload: a catalog of realistic price lists and a synthetic FOCUS
bill of N lines for C customers, made from the rows of the real sample bill
(``demo/focus_sample.csv``). Used by ``bench/pipeline_bench.py`` and its tests."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stdnum import ean
from stdnum.ie import vat as ie_vat
from stdnum.iso7064 import mod_11_10, mod_97_10

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "demo" / "focus_sample.csv"
PERIOD = "2024-09"
Profile = Literal["spread", "single"]


@dataclass(frozen=True)
class Workload:
    """What one run bills: ``lines`` FOCUS lines of ``PERIOD`` over ``customers`` customers
    (``single``: one customer holds every line)."""

    lines: int
    customers: int
    profile: Profile = "spread"

    def __post_init__(self) -> None:
        if self.lines < self.customer_count:
            msg = f"{self.lines} lines cannot give each of {self.customer_count} customers one"
            raise ValueError(msg)

    @property
    def customer_count(self) -> int:
        """Customers in the catalog (each gets lines, so each gets an invoice)."""
        return 1 if self.profile == "single" else self.customers

    @property
    def name(self) -> str:
        return f"{self.lines}-{self.customer_count}-{self.profile}"


def customer_id(c: int) -> str:
    return f"cust-{c:05d}"


def accounts_of(c: int) -> dict[str, list[str]]:
    """The customer's cloud accounts per FOCUS provider name: two AWS, one Azure, one Oracle."""
    return {
        "AWS": [f"{700000000000 + c * 10 + a}" for a in range(2)],
        "Microsoft": [f"/subscriptions/00000000-bench-4000-8000-{c:012d}"],
        "Oracle": [f"ocid1.tenancy.oc1..bench{c:08d}"],
    }


PRICE_LISTS: list[dict[str, Any]] = [
    {"id": "standard", "rules": [{"kind": "markup", "percent": "12.5"}]},
    {
        "id": "partner",
        "rules": [
            {"kind": "markup", "percent": "8"},
            {"kind": "discount", "percent": "5", "provider": "AWS", "service": "AWS Lambda"},
            {"kind": "markup", "percent": "10", "provider": "Microsoft"},
        ],
    },
    {
        # a volume deal: graduated spend tiers on compute (cumulative over the period)
        "id": "volume",
        "rules": [
            {"kind": "markup", "percent": "10"},
            {
                "id": "ec2-spend-tiers",
                "kind": "tiered",
                "mode": "graduated",
                "measure": "spend",
                "provider": "AWS",
                "service": "Amazon Elastic Compute Cloud",
                "tiers": [
                    {"up_to": "50", "percent": "15"},
                    {"up_to": "500", "percent": "10"},
                    {"percent": "6"},
                ],
            },
        ],
    },
    {
        # graduated unit prices on load-balancer hours
        "id": "enterprise",
        "rules": [
            {"kind": "markup", "percent": "6"},
            {
                "id": "elb-quantity-tiers",
                "kind": "tiered",
                "mode": "graduated",
                "measure": "quantity",
                "provider": "AWS",
                "service": "Elastic Load Balancing",
                "tiers": [{"up_to": "100", "unit_price": "0.03"}, {"unit_price": "0.02"}],
            },
        ],
    },
]
COUNTRIES = [("US", False), ("DE", True), ("IE", True), ("FR", False)]
"""Buyers' countries (and whether they have a VAT id): no VAT, German VAT, reverse charge,
One-Stop-Shop VAT."""

CITIES = {
    "US": ("Seattle", "98101"),
    "DE": ("Köln", "50667"),
    "IE": ("Dublin", "D02 X285"),
    "FR": ("Lyon", "69002"),
}
"""Each buyer country's city and post code (structured e-invoices carry them: BT-52, BT-53)."""

EINVOICE: dict[str, list[str]] = {
    "US": [],
    "DE": ["xrechnung"],
    "IE": ["peppol"],
    "FR": ["facturx"],
}
"""The e-invoice format each buyer country's customers receive (docs/einvoice.md): German
buyers XRechnung (with a Leitweg-ID), Irish ones Peppol BIS, French ones Factur-X (the PDF they
are emailed carries the CII XML); US buyers the plain PDF. Every issued document can still be
asked for in any of the three formats, so every customer has what all three need."""


def vat_id(country: str, c: int) -> str:
    """A VAT id with valid check digits (the catalog refuses others) for customer ``c``."""
    if country == "DE":
        digits = f"{10_000_000 + c:08d}"
        return f"DE{digits}{mod_11_10.calc_check_digit(digits)}"
    digits = f"{c:07d}"
    return f"IE{digits}{ie_vat.calc_check_digit(digits)}"


def leitweg_id(c: int) -> str:
    """A Leitweg-ID (the German public buyer's routing id, XRechnung's BT-10) for customer
    ``c``: coarse address, fine address, and ISO 7064 MOD 97-10 check digits."""
    coarse, fine = "05315", f"{c:06d}"
    return f"{coarse}-{fine}-{mod_97_10.calc_check_digits(coarse + fine)}"


def peppol_id(country: str, c: int) -> str:
    """The customer's Peppol participant id: its VAT id under the country's VAT scheme (9930
    German, 9935 Irish), else a GLN (0088) with a valid check digit."""
    if country == "DE":
        return f"9930:{vat_id(country, c)}"
    if country == "IE":
        return f"9935:{vat_id(country, c)}"
    gln = f"4{c:011d}"
    return f"0088:{gln}{ean.calc_check_digit(gln)}"


def catalog_document(workload: Workload) -> dict[str, Any]:
    """The catalog of a run: one reseller, the price lists, a plan, the customers."""
    customers = []
    for c in range(workload.customer_count):
        country, has_vat_id = COUNTRIES[c % len(COUNTRIES)]
        city, postal_code = CITIES[country]
        customer: dict[str, Any] = {
            "id": customer_id(c),
            "name": f"Customer {c:05d} Ltd",
            "address": {
                "lines": [f"{c} Bench Street"],
                "country": country,
                "city": city,
                "postal_code": postal_code,
            },
            "currency": "USD",
            "payment_terms_days": 30,
            "language": "en",
            "invoicing_entity": "bench",
            "price_list": PRICE_LISTS[c % len(PRICE_LISTS)]["id"],
            "contacts": [{"email": f"ap@{customer_id(c)}.example", "roles": ["Billing"]}],
            "einvoice": EINVOICE[country],
            "peppol_participant_id": peppol_id(country, c),
            "accounts": [
                {"provider": provider, "account_id": account}
                for provider, ids in accounts_of(c).items()
                for account in ids
            ],
        }
        if has_vat_id:
            customer["vat_id"] = vat_id(country, c)
        if country == "DE":
            customer["einvoice_buyer_reference"] = leitweg_id(c)
        if c % 5 == 0:
            customer["subscriptions"] = [
                {"plan": "cloud-plus", "quantity": 1, "start": "2024-01-01"}
            ]
        customers.append(customer)
    return {
        "invoicing_entities": [
            {
                "id": "bench",
                "name": "Bench Cloud Resellers GmbH",
                "address": {
                    "lines": ["Wolkenstrasse 7", "10115 Berlin"],
                    "country": "DE",
                    "city": "Berlin",
                    "postal_code": "10115",
                },
                "vat_id": "DE123456788",
                "phone": "+49 30 1234567",
                "peppol_participant_id": "9930:DE123456788",
                "number_prefix": "BCR-",
                "email": "billing@bench.example",
                "payment_methods": [
                    {"kind": "Bank transfer", "details": "IBAN DE89 3704 0044 0532 0130 00"}
                ],
            }
        ],
        "tax_rates": [
            {"country": "DE", "percent": "19", "effective_from": "2021-01-01"},
            {"country": "FR", "percent": "20", "effective_from": "2021-01-01"},
            {"country": "IE", "percent": "23", "effective_from": "2021-03-01"},
        ],
        "plans": [
            {
                "id": "cloud-plus",
                "name": "Cloud Plus",
                "currency": "USD",
                "fee": "99.00",
                "included_infrastructure": "40.00",
            }
        ],
        "price_lists": [
            {
                "id": p["id"],
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2024-01-01",
                        "currency": "USD",
                        "rules": p["rules"],
                    }
                ],
            }
            for p in PRICE_LISTS
        ],
        "customers": customers,
    }


def sample_rows() -> tuple[list[str], list[list[str]]]:
    """The sample bill's header and its rows of ``PERIOD``."""
    with SAMPLE.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        period_start = header.index("BillingPeriodStart")
        rows = [row for row in reader if row[period_start].startswith(PERIOD)]
    return header, rows


def write_bill(workload: Workload, path: Path) -> Path:
    """A FOCUS file of ``workload.lines`` lines: the sample's rows of the period in turn, line
    ``i`` billed to customer ``i mod C`` on one of its accounts of the row's provider, with a
    resource id of its own (so that every line is a distinct record)."""
    if path.exists():
        return path
    header, rows = sample_rows()
    col = {name: header.index(name) for name in ("SubAccountId", "SubAccountName", "ResourceId")}
    provider_col = header.index("ProviderName")
    accounts = [accounts_of(c) for c in range(workload.customer_count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for i in range(workload.lines):
            row = list(rows[i % len(rows)])
            c = i % workload.customer_count
            ids = accounts[c][row[provider_col]]
            row[col["SubAccountId"]] = ids[(i // workload.customer_count) % len(ids)]
            row[col["SubAccountName"]] = f"{customer_id(c)} account"
            row[col["ResourceId"]] = f"bench-{i}"
            writer.writerow(row)
    partial.rename(path)
    return path
