"""API tokens and their scopes (domain/access.py, InvoicingSettings.api_scopes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing_invoicing.domain.access import (
    ForbiddenError,
    OutOfScopeError,
    Scope,
    TokenConfigError,
    authenticate,
    parse_tokens,
    require_customer,
    require_operator,
)
from billing_invoicing.settings import InvoicingSettings

OPERATOR = "op-0123456789abcdef"
ALPHA = "alpha-0123456789abcdef"


def test_a_token_is_recognised_with_its_scope_and_anything_else_is_not() -> None:
    tokens = parse_tokens({OPERATOR: "operator", ALPHA: "customer:alpha"})
    assert authenticate(tokens, OPERATOR) == Scope(None)
    assert authenticate(tokens, ALPHA) == Scope("alpha")
    for wrong in (None, "", ALPHA[:-1], ALPHA + "x", OPERATOR.upper()):
        assert authenticate(tokens, wrong) is None


def test_a_customer_scope_covers_its_customer_only_and_no_operator_action() -> None:
    alpha = Scope("alpha")
    require_customer(alpha, "alpha")
    require_customer(Scope(None), "beta")  # operators see every customer
    require_operator(Scope(None), "closing a period")
    # another customer's: as if it did not exist (issue 13 item 15), naming no one else
    with pytest.raises(OutOfScopeError, match=r"^no customer 'beta'$"):
        require_customer(alpha, "beta")
    with pytest.raises(ForbiddenError, match=r"closing a period needs an operator token"):
        require_operator(alpha, "closing a period")


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"short": "operator"}, r"API token #1 \(shor\.\.\.\) is shorter than 16"),
        ({OPERATOR: "admin"}, r"#1 \(op-0\.\.\.\): scope 'admin' is neither"),
        ({OPERATOR: "operator", ALPHA: "customer:"}, r"#2 \(alph\.\.\.\): scope 'customer:'"),
    ],
)
def test_a_bad_token_configuration_is_refused_naming_which(
    tokens: dict[str, str], message: str
) -> None:
    with pytest.raises(TokenConfigError, match=message):
        parse_tokens(tokens)


def test_tokens_come_from_the_variable_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "tokens.json"
    secret.write_text(json.dumps({ALPHA: "customer:alpha"}))
    monkeypatch.setenv("BILLING_INVOICING_API_TOKENS", json.dumps({OPERATOR: "operator"}))
    monkeypatch.setenv("BILLING_INVOICING_API_TOKENS_FILE", str(secret))
    settings = InvoicingSettings()
    assert OPERATOR not in repr(settings)  # never logged
    assert settings.api_scopes() == {
        OPERATOR.encode(): Scope(None),
        ALPHA.encode(): Scope("alpha"),
    }
    secret.write_text("[1]")
    with pytest.raises(TokenConfigError, match=r"not a JSON object"):
        settings.api_scopes()
