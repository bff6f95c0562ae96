"""Checks of a FOCUS 1.2 dataset: the FinOps Foundation's ``focus-validator`` and the column
rules of FOCUS 1.2 that it does not know.

``focus-validator`` 1.0.0 (the newest on PyPI, December 2026) carries rule sets for FOCUS 0.5,
1.0-preview and 1.0 only, not 1.2. Its ``1.0`` set is run here, less six rules that no
correct dataset passes, overridden with its ``--override-file`` (one by hand, below): four
require columns by the names of the 1.0 *preview*, which FOCUS 1.0 final renamed
(``Provider``, ``Publisher``, ``InvoiceIssuer``, ``ResourceID`` became ``ProviderName``,
``PublisherName``, ``InvoiceIssuerName``, ``ResourceId``), one reads the preview's ``ChargeType``
(``SkuPriceId_Nullable``; the FinOps Foundation's own ``focus_sample.csv`` fails those five
too), and ``SubAccountId_IsString`` fails any CSV whose account ids are digits (AWS's), because
pandas reads them as numbers. It also needs ``multimethod<2`` (pandera 0.17, which it pins,
imports a name multimethod 2 removed), finds its currency list by a path relative to the
working directory (run from its package's parent below), always exits 0 (its JUnit report is
read instead), and pins numpy<2, beside which the workspace's pyarrow 26 will not import: it
runs in an environment of its own (``uv tool run``, from PyPI on first use, then cached).
:func:`focus_12_problems` then checks what FOCUS 1.2 itself asks of each column we write
(presence of the mandatory columns, nulls, types, allowed values, date/time format, and the
conditional rules between columns), from the specification's column pages (tag v1.2 of
FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, ``specification/columns/*.md``).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from decimal import Decimal, InvalidOperation
from pathlib import Path

from billing_schemas.money import known_currency_codes

ROOT = Path(__file__).resolve().parents[3]

OVERRIDDEN = [
    "Provider_Required",
    "Publisher_Required",
    "InvoiceIssuer_Required",
    "ResourceID_Required",
    "SkuPriceId_Nullable",
    "SubAccountId_IsString",  # skipped in its check list, but still failed: see below
]
"""focus-validator 1.0.0 rules that no correct dataset passes (module docstring)."""


VALIDATOR = ["focus-validator==1.0.0", "multimethod==1.12"]
"""The validator, in an environment of its own: it pins numpy<2, which the workspace's pyarrow
26 refuses to import beside, so it cannot be a dependency of the workspace."""


def uv() -> str:
    """The uv the Makefile uses: on PATH, else ``var/tools/bin/uv``."""
    found = shutil.which("uv") or str(ROOT / "var" / "tools" / "bin" / "uv")
    assert Path(found).exists(), "uv is needed to run focus-validator (make install puts it)"
    return found


def validator_environment() -> tuple[Path, Path]:
    """focus-validator's environment (``uv tool run``: made from PyPI once, then cached): its
    ``focus-validator`` script and its package's parent directory."""
    where = subprocess.run(
        [
            *(uv(), "tool", "run", "--from", VALIDATOR[0], "--with", VALIDATOR[1]),
            *(
                "python",
                "-c",
                "import importlib.util as u, sys; print(sys.executable); "
                "print(u.find_spec('focus_validator').origin)",
            ),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert where.returncode == 0, where.stderr
    python, origin = where.stdout.split()
    return Path(python).with_name("focus-validator"), Path(origin).resolve().parents[1]


def focus_validator_failures(dataset: Path, work: Path) -> list[str]:
    """Run ``focus-validator --validate-version 1.0`` on a CSV; return its failed checks
    (``name: message``), none when it passes."""
    overrides = work / "overrides.yaml"
    overrides.write_text("overrides:\n" + "".join(f"  - {r}\n" for r in OVERRIDDEN))
    report = work / "focus-validator.xml"
    script, package_parent = validator_environment()
    done = subprocess.run(
        [
            str(script),
            *("--data-file", str(dataset.resolve()), "--validate-version", "1.0"),
            *("--override-file", str(overrides.resolve())),
            *("--output-type", "unittest", "--output-destination", str(report.resolve())),
        ],
        # it opens its currency list by a path relative to its package's parent
        cwd=package_parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    root = ET.parse(report).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) > 100, f"the validator ran {len(cases)} checks"  # it did run its 1.0 set
    failures = [
        f"{failure.get('name')}: {failure.get('message')}" for failure in root.iter("failure")
    ]
    # focus-validator 1.0.0 keeps a column's pandas type check even when its data-type rule is
    # overridden (focus_to_pandera_schema_converter: the pa.Column keeps pa.String), so a CSV
    # whose account ids are all digits fails SubAccountId_IsString whatever the override says:
    # dropped exactly then
    with dataset.open(newline="", encoding="utf-8") as handle:
        ids = {row.get("SubAccountId") or "" for row in csv.DictReader(handle)} - {""}
    if ids and all(i.isdigit() for i in ids):
        failures = [f for f in failures if not f.startswith("SubAccountId_IsString:")]
    return failures


MANDATORY = [
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
]  # fmt: skip
NOT_NULL = [
    "BilledCost", "BillingAccountName", "InvoiceId", "BillingAccountId", "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargePeriodEnd", "ChargePeriodStart",
    "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "ProviderName",
    "PublisherName", "ServiceCategory", "ServiceName", "ChargeFrequency",
]  # fmt: skip
DECIMALS = ["BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity"]
DATETIMES = ["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"]
ALLOWED = {
    "ChargeCategory": {"Usage", "Purchase", "Tax", "Credit", "Adjustment"},
    "ChargeClass": {"Correction"},
    "ChargeFrequency": {"One-Time", "Recurring", "Usage-Based"},
    "ServiceCategory": {
        "AI and Machine Learning", "Analytics", "Business Applications", "Compute",
        "Databases", "Developer Tools", "Multicloud", "Identity", "Integration",
        "Internet of Things", "Management and Governance", "Media", "Migration", "Mobile",
        "Networking", "Security", "Storage", "Web", "Other",
    },
}  # fmt: skip
ALWAYS_NULL = [
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "ContractedUnitPrice",
    "ListUnitPrice", "ResourceName", "ResourceType", "Tags",
]  # fmt: skip
"""Columns we present null (a unit price set would have to multiply out to the cost; a
commitment status needs a commitment id; resource names and types need a ResourceId)."""
FOCUS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NUMERIC = re.compile(r"^-?(\d+(\.\d+)?|\.\d+)(E-?\d+)?$")
COLUMN_ID = re.compile(r"^([A-Z][a-zA-Z0-9]*|x_[A-Za-z0-9_]+)$")


def focus_12_problems(dataset: Path) -> list[str]:
    """What in a CSV dataset breaks FOCUS 1.2's column rules (empty cell = null)."""
    with dataset.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    problems = [f"missing mandatory column {c}" for c in MANDATORY if c not in columns]
    problems += [
        f"column id {c!r} is neither FOCUS nor x_" for c in columns if not COLUMN_ID.match(c)
    ]
    currencies = known_currency_codes()
    for n, row in enumerate(rows, start=2):
        at = f"row {n}"
        cell = {k: (v if v != "" else None) for k, v in row.items()}
        problems += [f"{at}: {c} is null" for c in NOT_NULL if c in cell and cell[c] is None]
        for c in DECIMALS:
            value = cell.get(c)
            if value is not None:
                try:
                    Decimal(value)
                except InvalidOperation:
                    problems.append(f"{at}: {c} {value!r} is not a decimal")
                if not NUMERIC.match(value):
                    problems.append(f"{at}: {c} {value!r} breaks NumericFormat")
        for c in DATETIMES:
            value = cell.get(c)
            if value is not None and not FOCUS_TIME.match(value):
                problems.append(f"{at}: {c} {value!r} is not YYYY-MM-DDTHH:mm:ssZ")
        for c, allowed in ALLOWED.items():
            value = cell.get(c)
            if value is not None and value not in allowed:
                problems.append(f"{at}: {c} {value!r} is not an allowed value")
        if cell.get("BillingCurrency") not in currencies:
            problems.append(f"{at}: BillingCurrency {cell.get('BillingCurrency')!r}")
        category, correction = cell.get("ChargeCategory"), cell.get("ChargeClass")
        quantity, unit = cell.get("PricingQuantity"), cell.get("PricingUnit")
        if category == "Tax" and quantity is not None:
            problems.append(f"{at}: PricingQuantity must be null on a Tax row")
        if category in ("Usage", "Purchase") and correction is None and quantity is None:
            problems.append(f"{at}: PricingQuantity must not be null on {category}")
        if (quantity is None) != (unit is None):
            problems.append(f"{at}: PricingUnit null exactly when PricingQuantity is")
        if category != "Usage" and cell.get("ConsumedQuantity") is not None:
            problems.append(f"{at}: ConsumedQuantity must be null unless Usage")
        if (cell.get("ConsumedQuantity") is None) != (cell.get("ConsumedUnit") is None):
            problems.append(f"{at}: ConsumedUnit null exactly when ConsumedQuantity is")
        pricing = cell.get("PricingCategory")
        if category == "Tax" and pricing is not None:
            problems.append(f"{at}: PricingCategory must be null on a Tax row")
        if category in ("Usage", "Purchase") and correction is None and pricing is None:
            problems.append(f"{at}: PricingCategory must not be null on {category}")
        if pricing is not None and pricing not in {"Standard", "Dynamic", "Committed", "Other"}:
            problems.append(f"{at}: PricingCategory {pricing!r} is not an allowed value")
        if category == "Tax" and cell.get("SkuPriceId") is not None:
            problems.append(f"{at}: SkuPriceId must be null on a Tax row")
        if any(cell.get(c) is not None for c in ALWAYS_NULL):
            problems.append(f"{at}: a commitment-discount, unit-price or resource column is set")
        if category == "Purchase" and cell.get("ChargeFrequency") == "Usage-Based":
            problems.append(f"{at}: a Purchase is not Usage-Based")
        for a, b in (("RegionId", "RegionName"), ("SubAccountId", "SubAccountName")):
            if a in cell and (cell[a] is None) != (cell.get(b) is None):
                problems.append(f"{at}: {b} null exactly when {a} is")
        if "InvoiceId" in cell and cell["InvoiceId"] is None:
            problems.append(f"{at}: InvoiceId is null on an invoiced charge")
        for start, end in (
            ("BillingPeriodStart", "BillingPeriodEnd"),
            ("ChargePeriodStart", "ChargePeriodEnd"),
        ):
            if (cell.get(start) or "") >= (cell.get(end) or ""):
                problems.append(f"{at}: {start} not before {end}")
    return problems
