"""The committed AsyncAPI documents match what the services' code declares."""

from __future__ import annotations

import pytest
import yaml

from billing_cli.asyncapi import SERVICES, document_path, generate
from billing_schemas.topics import Topic


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_committed_asyncapi_document_is_up_to_date(service: str) -> None:
    generated = await generate(service)
    committed = document_path(service).read_text(encoding="utf-8")
    assert generated == committed, (
        f"services/{service}/asyncapi.yaml is out of date: run `uv run billing asyncapi`"
    )


async def test_every_topic_is_documented_by_the_service_that_writes_it() -> None:
    addresses: set[str] = set()
    for service in SERVICES:
        document = yaml.safe_load(await generate(service))
        for name, channel in document["channels"].items():
            if name.endswith(":publish"):
                addresses.add(channel["address"])
    produced_outside = {Topic.USAGE_SUBMITTED.value, Topic.INVOICES_GENERATE.value}
    # billing reconcile (the operators' tool, no service) publishes the verdicts notify reads
    produced_outside.add(Topic.PERIOD_RECONCILED.value)
    # payments, credit notes and overdue notices are published by invoicing's commands
    # (billing pay, billing invoices credit|void|overdue), declared in its document
    assert {t.value for t in Topic} - produced_outside <= addresses
    # and the dead letters of what services consume
    assert {
        Topic.USAGE_SUBMITTED.dead_letter,
        Topic.USAGE_RECORDED.dead_letter,
        Topic.CHARGE_RATED.dead_letter,
        Topic.INVOICES_GENERATE.dead_letter,
        Topic.INVOICE_FINALIZED.dead_letter,
        Topic.BILL_PROCESSED.dead_letter,
        Topic.PAYMENT_RECORDED.dead_letter,
        Topic.CREDIT_NOTE_ISSUED.dead_letter,
        Topic.INVOICE_OVERDUE.dead_letter,
        Topic.PERIOD_RECONCILED.dead_letter,
    } <= addresses
