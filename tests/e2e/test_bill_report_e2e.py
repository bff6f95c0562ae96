"""The operators' bill report, through the running notify service: a bill with rejected rows
is loaded with ``billing ingest``; the email lists the bill's first rejected rows as ingest
stored them (``billing bills show``), taken from the event, not from ingest's collections."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from billing_schemas.events import REJECTED_ROWS_CARRIED

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "demo" / "focus_sample.csv"


def _bill_with_rejected_rows(path: Path, count: int) -> None:
    """The sample's first 80 lines, ``count`` of them broken: every third one has two fields
    too many (found after its batch's good rows), the others a BilledCost that is no number
    (found as it is read): the order of rejection is not the row order."""
    header, *lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:81]
    broken = [
        (line + ",x,y" if index % 3 == 0 else line.replace(",", ",oops", 1))
        if index < count
        else line
        for index, line in enumerate(lines)
    ]
    path.write_text("\n".join([header, *broken]) + "\n", encoding="utf-8")


async def _report(directory: Path, seconds: float = 120) -> EmailMessage:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        for path in sorted(directory.glob("*.eml")):  # noqa: ASYNC240 - a tiny local listing
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if str(message["Subject"]).strip().startswith("Bill "):  # the sink folds it
                return message
        await asyncio.sleep(0.25)
    raise AssertionError("no bill report emailed")


async def test_the_bill_report_lists_the_first_rejected_rows_ingest_stored(
    pipeline: Any, tmp_path: Path
) -> None:
    pipeline.extra_env["BILLING_NOTIFY_OPERATORS"] = "ops@cumulus.example"
    await pipeline.start("notify")
    bill = tmp_path / "focus-broken.csv"
    _bill_with_rejected_rows(bill, REJECTED_ROWS_CARRIED + 5)
    loaded = json.loads(await pipeline.billing("ingest", str(bill), "--json"))
    assert loaded["rows_rejected"] == REJECTED_ROWS_CARRIED + 5
    shown = json.loads(await pipeline.billing("bills", "show", loaded["bill_id"], "--json"))
    stored = shown["rejected_rows"]  # ingest's store, in row order
    assert [r["row"] for r in stored] == list(range(2, 2 + REJECTED_ROWS_CARRIED + 5))

    report = await _report(pipeline.smtp.directory)
    assert [a.addr_spec for a in report["To"].addresses] == ["ops@cumulus.example"]
    body = report.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    listed = [line.strip() for line in text.splitlines() if line.strip().startswith(bill.name)]
    assert listed == [
        f"{bill.name} row {r['row']}, column {r['column'] or '-'}: {r['reason']}"
        for r in stored[:REJECTED_ROWS_CARRIED]
    ]
    assert f"... and 5 more: billing bills show {loaded['bill_id']}" in text
    # both kinds of rejection are among them
    assert {r["column"] for r in stored[:REJECTED_ROWS_CARRIED]} == {None, "BilledCost"}
