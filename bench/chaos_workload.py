"""The fault campaign's workload (``bench/chaos.py``): what it bills, in several forms.

- bill A: a FOCUS file from the pipeline benchmark's generator (four accounts per customer);
- bill B: an AWS CUR (legacy) file on a fifth account of each customer, and B2, a restated
  version of it (some lines dropped, some re-priced, some new);
- upstream usage events on a sixth account of each customer (OpenStack projects), sent over HTTP
  and over Kafka, with duplicates (the same event again) and conflicts (the same id, another cost).

Everything is derived from a seed, so a campaign can be run again identically.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline_workload import PERIOD, ROOT, Workload, catalog_document, customer_id

CUR_FIXTURE = ROOT / "services" / "ingest" / "tests" / "fixtures" / "aws_cur_legacy.csv"
EVENT_SOURCE = "metering/chaos"


def cur_account(c: int) -> str:
    """Customer ``c``'s AWS account billed through the CUR file."""
    return f"{810000000000 + c}"


def project(c: int) -> str:
    """Customer ``c``'s OpenStack project, billed through upstream usage events."""
    return f"chaos-project-{c:05d}"


def chaos_catalog(workload: Workload) -> dict[str, Any]:
    """The pipeline benchmark's catalog, each customer with its CUR account and project too."""
    document = catalog_document(workload)
    for c, customer in enumerate(document["customers"]):
        customer["accounts"] += [
            {"provider": "AWS", "account_id": cur_account(c)},
            {"provider": "OpenStack", "account_id": project(c)},
        ]
    return document


@dataclass(frozen=True)
class CurBills:
    """Bill B and its restatement B2."""

    original: Path
    restated: Path
    dropped: int
    repriced: int
    added: int


def write_cur_bills(rng: random.Random, lines: int, customers: int, folder: Path) -> CurBills:
    """An AWS CUR (legacy) bill of ``lines`` usage lines over the customers' CUR accounts, and a
    restatement of it: every 20th line dropped, every 15th re-priced, ``lines // 50`` new."""
    with CUR_FIXTURE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        template = next(r for r in reader if r["lineItem/LineItemType"] == "Usage")

    def line(i: int, cost: Decimal) -> dict[str, str]:
        c = i % customers
        hours = Decimal(rng.randint(1, 48))
        return template | {
            "identity/LineItemId": f"chaos-cur-{i}",
            "lineItem/UsageAccountId": cur_account(c),
            "lineItem/ResourceId": f"i-chaos{i:07d}",
            "lineItem/UsageAmount": str(hours),
            "lineItem/UnblendedCost": str(cost),
            "pricing/publicOnDemandCost": str(cost),
        }

    original = [line(i, Decimal(rng.randint(1, 99_999)) / 10_000) for i in range(lines)]
    restated, dropped, repriced = [], 0, 0
    for i, row in enumerate(original):
        if i % 20 == 7:
            dropped += 1
        elif i % 15 == 3:
            repriced += 1
            cost = Decimal(row["lineItem/UnblendedCost"]) * 2
            restated.append(row | {"lineItem/UnblendedCost": str(cost)})
        else:
            restated.append(row)
    added = max(1, lines // 50)
    restated += [line(lines + i, Decimal(rng.randint(1, 99_999)) / 10_000) for i in range(added)]
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "chaos-cur.csv", folder / "chaos-cur-restated.csv"
    for path, rows in zip(paths, (original, restated), strict=True):
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, header)
            writer.writeheader()
            writer.writerows(rows)
    return CurBills(paths[0], paths[1], dropped, repriced, added)


def usage_event(i: int, customers: int, cost: Decimal) -> dict[str, Any]:
    """Upstream usage event ``i`` (a compute hour of customer ``i mod customers``)."""
    c = i % customers
    day = 1 + i % 28
    hour = i % 24
    start = f"{PERIOD}-{day:02d}T{hour:02d}:00:00Z"
    end = f"{PERIOD}-{day:02d}T{hour:02d}:59:59Z"
    return {
        "id": f"chaos-event-{i}",
        "source": EVENT_SOURCE,
        "type": "com.example.usage.v1",
        "time": end,
        "data": {
            "provider": "OpenStack",
            "sub_account_id": project(c),
            "service_name": "compute",
            "sku_id": "m1.small",
            "quantity": "1",
            "unit": "hour",
            "cost": str(cost),
            "currency": "USD",
            "charge_period_start": start,
            "charge_period_end": end,
            "tags": {"customer": customer_id(c)},
        },
    }


@dataclass(frozen=True)
class Events:
    """The upstream events to send, in order, over each channel."""

    http: list[dict[str, Any]]
    kafka: list[dict[str, Any]]
    distinct: int
    duplicates: int
    conflicts: int


def make_events(rng: random.Random, count: int, customers: int) -> Events:
    """``count`` distinct events, half for HTTP and half for Kafka; about 3 % of them sent a
    second time unchanged (a duplicate), and 1 % again with another cost (a conflict, which must
    never be billed)."""
    events = [
        usage_event(i, customers, Decimal(rng.randint(1, 9_999)) / 1000) for i in range(count)
    ]
    duplicates = [e for e in events if rng.random() < 0.03]
    conflicts = []
    for e in events:
        if rng.random() < 0.01:
            other = Decimal(e["data"]["cost"]) + Decimal("1.001")
            conflicts.append(e | {"data": e["data"] | {"cost": str(other)}})
    extra = duplicates + conflicts
    rng.shuffle(extra)
    half = len(events) // 2
    http = events[:half] + extra[: len(extra) // 2]
    kafka = events[half:] + extra[len(extra) // 2 :]
    return Events(http, kafka, len(events), len(duplicates), len(conflicts))
