"""What a price rule derives from its fields (derived once, forgotten by a copy)."""

from __future__ import annotations

from decimal import Decimal

from billing_catalog.pricing import MarkupRule


def test_what_a_rule_derives_follows_its_fields_in_a_copy() -> None:
    rule = MarkupRule(percent=Decimal(10), provider="AWS", service="Amazon EC2")
    assert (rule.rule_id, rule.scope_text(), rule.specificity) == (
        "markup@AWS/Amazon EC2/*",
        "AWS / Amazon EC2",
        (2, 2),
    )
    narrower = rule.model_copy(update={"sku": "BoxUsage", "region": "eu-west-1"})
    assert (narrower.rule_id, narrower.scope_text(), narrower.specificity) == (
        "markup@AWS/Amazon EC2/BoxUsage[region=eu-west-1]",
        "AWS / Amazon EC2 / BoxUsage (region eu-west-1)",
        (3, 4),
    )
    assert rule.rule_id == "markup@AWS/Amazon EC2/*"  # the original keeps its own
    assert rule == MarkupRule(percent=Decimal(10), provider="AWS", service="Amazon EC2")
    assert "rule_id" not in rule.model_dump()
