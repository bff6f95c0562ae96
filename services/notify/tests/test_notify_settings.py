"""Notify's settings refuse a sender or operator that is not a mailbox, naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from billing_notify.bootstrap import invoice_pdfs
from billing_notify.domain.recipients import Mailbox
from billing_notify.settings import NotifySettings


def test_a_sender_that_is_not_a_mailbox_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match=r"sender: 'no-at-sign' is not a valid email"):
        NotifySettings(sender="no-at-sign")


def test_an_operator_that_is_not_a_mailbox_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match=r"operators: 'broken' is not a valid email"):
        NotifySettings.model_validate({"operators": "ops@example.com, broken"})


def test_valid_operators_are_read_as_mailboxes() -> None:
    settings = NotifySettings.model_validate(
        {
            "sender": "Billing <billing@acme.example>",
            "operators": "ops@x.example, Fin <f@x.example>",
        },
    )
    assert settings.sender_mailbox == Mailbox("billing@acme.example", "Billing")
    assert settings.operator_mailboxes == (
        Mailbox("ops@x.example", None),
        Mailbox("f@x.example", "Fin"),
    )


def test_the_send_concurrency_is_read_from_the_environment_and_is_at_least_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert NotifySettings().send_concurrency == 8
    monkeypatch.setenv("BILLING_NOTIFY_SEND_CONCURRENCY", "3")
    assert NotifySettings().send_concurrency == 3
    monkeypatch.setenv("BILLING_NOTIFY_SEND_CONCURRENCY", "0")
    with pytest.raises(ValidationError, match="send_concurrency"):
        NotifySettings()


async def test_without_a_document_reader_token_notify_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="BILLING_NOTIFY_INVOICING_TOKEN must be set"):
        invoice_pdfs(NotifySettings())
    monkeypatch.setenv("BILLING_NOTIFY_INVOICING_URL", "http://invoicing.billing:8103/")
    monkeypatch.setenv("BILLING_NOTIFY_INVOICING_TOKEN", "notify-reader-token-0123456789")
    settings = NotifySettings()
    assert settings.invoicing_token is not None
    assert "notify-reader-token" not in repr(settings)  # a secret, never logged
    pdfs = invoice_pdfs(settings)
    await pdfs.aclose()
