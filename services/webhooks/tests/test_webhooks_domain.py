"""The pure rules of webhooks: messages, endpoints, ordering, retries, disabling, signing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from webhooks_test_support import T0, bill_processed, endpoint, finalized, paid, payment

from billing_webhooks.adapters.http_sender import signed_headers
from billing_webhooks.domain import endpoints as rules
from billing_webhooks.domain.deliveries import (
    Attempt,
    DeliveryState,
    RetryPolicy,
    after_attempt,
    deliveries_for,
    due,
    heads,
)
from billing_webhooks.domain.endpoints import EndpointError, check_url, parse_kinds
from billing_webhooks.domain.messages import EventKind, message_for

POLICY = RetryPolicy(
    base=timedelta(seconds=5),
    maximum=timedelta(seconds=60),
    max_attempts=4,
    order_window=timedelta(seconds=2),
)


def test_message_body_is_type_timestamp_and_the_payload_with_decimal_strings() -> None:
    message = message_for(finalized())
    body = json.loads(message.body)
    assert body["type"] == "invoice.finalized"
    assert body["timestamp"] == "2024-10-01T09:00:00+00:00"
    assert body["data"]["total"] == "120.00"
    assert body["data"]["invoice_number"] == "INV-ACME-1"
    assert message.message_id == "invoice-finalized:acme:2024-09"
    assert message.order_key == "invoice:acme:2024-09"
    assert message.customer_id == "acme"


def test_bill_messages_belong_to_no_customer_and_go_to_operators_only() -> None:
    message = message_for(bill_processed())
    assert message.customer_id is None
    assert message.order_key == "bill:bill-1"
    operators = endpoint("ep_ops")
    customer = endpoint("ep_acme", customer="acme")
    assert operators.receives(message)
    assert not customer.receives(message)


def test_an_endpoint_receives_its_customer_and_its_kinds_only() -> None:
    acme = endpoint("ep_a", customer="acme", kinds=frozenset({EventKind.INVOICE_PAID}))
    assert acme.receives(message_for(paid("acme")))
    assert not acme.receives(message_for(finalized("acme")))
    assert not acme.receives(message_for(paid("globex")))
    assert not rules.disable(acme, T0, "x").receives(message_for(paid("acme")))


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://erp.example/hook", False, True),
        ("http://erp.example/hook", False, False),
        ("http://127.0.0.1:9000/hook", True, True),
        ("ftp://erp.example/hook", True, False),
        ("https://user:pw@erp.example/hook", False, False),
        ("https:///nohost", False, False),
        ("/relative", False, False),
        ("https://erp.example/hook#frag", False, False),
        ("https://10.1.2.3/hook", False, False),
        ("https://169.254.169.254/latest/meta-data", False, False),
        ("https://[::1]/hook", False, False),
        ("https://localhost/hook", False, False),
        ("https://93.184.215.14/hook", False, True),
    ],
)
def test_urls_must_be_https_with_a_host_and_no_credentials(
    url: str, allow_http: bool, ok: bool
) -> None:
    if ok:
        assert check_url(url, allow_http=allow_http) == url
    else:
        with pytest.raises(EndpointError):
            check_url(url, allow_http=allow_http)


def test_unknown_event_types_are_refused_naming_the_known_ones() -> None:
    assert parse_kinds(["invoice.paid", " bill.processed"]) == {
        EventKind.INVOICE_PAID,
        EventKind.BILL_PROCESSED,
    }
    with pytest.raises(EndpointError, match=r"invoice\.finalized"):
        parse_kinds(["invoice.payed"])


def test_only_the_first_delivery_of_an_invoice_per_endpoint_is_sent_in_event_order() -> None:
    ep = endpoint("ep_1")
    # consumed in the wrong order, from three topics
    msgs = [message_for(paid()), message_for(payment()), message_for(finalized())]
    pending = [d for m in msgs for d in deliveries_for(m, [ep], T0, POLICY)]
    first = heads(pending)
    assert [d.kind for d in first] == [EventKind.INVOICE_FINALIZED]
    # the payment and the "paid" occurred at the same instant: the payment goes first
    rest = [d for d in pending if d.kind is not EventKind.INVOICE_FINALIZED]
    assert [d.kind for d in heads(rest)] == [EventKind.PAYMENT_RECORDED]
    # another invoice is another chain
    other = deliveries_for(message_for(finalized("globex")), [ep], T0, POLICY)
    assert len(heads(pending + other)) == 2


def test_a_new_delivery_waits_for_the_order_window() -> None:
    [delivery] = deliveries_for(message_for(finalized()), [endpoint()], T0, POLICY)
    assert due([delivery], T0 + timedelta(seconds=1)) == []
    assert due([delivery], T0 + timedelta(seconds=2)) == [delivery]


def _attempt(number: int, status: int | None, seconds: float) -> Attempt:
    return Attempt(
        delivery_id="d",
        endpoint_id="ep_1",
        message_id="m",
        number=number,
        at=T0 + timedelta(seconds=seconds),
        status_code=status,
        error=None if status and status < 300 else "HTTP 503",
        duration_ms=12.5,
    )


def test_failed_attempts_back_off_doubling_up_to_the_maximum_then_fail() -> None:
    [delivery] = deliveries_for(message_for(finalized()), [endpoint()], T0, POLICY)
    waits = []
    for number in range(1, 4):
        delivery = after_attempt(delivery, _attempt(number, 503, 100 * number), POLICY)
        assert delivery.state is DeliveryState.PENDING
        waits.append(delivery.next_attempt_at - (T0 + timedelta(seconds=100 * number)))
    assert waits == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20)]
    assert POLICY.backoff(10) == timedelta(seconds=60)
    assert POLICY.backoff(10_000) == timedelta(seconds=60)  # no overflow after many attempts
    delivery = after_attempt(delivery, _attempt(4, None, 400), POLICY)
    assert delivery.state is DeliveryState.FAILED
    assert delivery.attempts == 4
    assert delivery.finished_at == T0 + timedelta(seconds=400)


def test_a_2xx_answer_delivers_and_a_redirect_does_not() -> None:
    [delivery] = deliveries_for(message_for(finalized()), [endpoint()], T0, POLICY)
    assert after_attempt(delivery, _attempt(1, 302, 1), POLICY).state is DeliveryState.PENDING
    done = after_attempt(delivery, _attempt(1, 204, 1), POLICY)
    assert done.state is DeliveryState.DELIVERED
    assert done.last_status == 204
    assert done.last_duration_ms == 12.5


def test_an_endpoint_failing_for_the_whole_period_is_disabled() -> None:
    ep = endpoint()
    limit = timedelta(days=5)
    ep = rules.after_failure(ep, T0, limit)
    assert ep.enabled
    assert ep.failing_since == T0
    ep = rules.after_failure(ep, T0 + timedelta(days=4, hours=23), limit)
    assert ep.enabled
    # a success in between starts the run again
    again = rules.after_failure(rules.after_success(ep), T0 + timedelta(days=5), limit)
    assert again.enabled
    assert again.failing_since == T0 + timedelta(days=5)
    disabled = rules.after_failure(ep, T0 + timedelta(days=5), limit)
    assert not disabled.enabled
    assert disabled.disabled_at == T0 + timedelta(days=5)
    assert "5.0 days" in (disabled.disabled_reason or "")
    assert rules.enable(disabled).failing_since is None


def test_signed_headers_verify_with_the_standard_webhooks_library() -> None:
    ep = endpoint()
    [delivery] = deliveries_for(message_for(finalized()), [ep], T0, POLICY)
    now = datetime.now(UTC)
    headers = signed_headers(ep, delivery, now)
    assert headers["webhook-id"] == delivery.message_id
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    verified = Webhook(ep.secret).verify(delivery.body, headers)
    assert verified["type"] == "invoice.finalized"
    with pytest.raises(WebhookVerificationError):
        Webhook(rules.new_secret()).verify(delivery.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(ep.secret).verify(delivery.body.replace("120.00", "1.00"), headers)


def test_the_operators_email_names_the_endpoint_why_and_how_to_enable_it() -> None:
    from billing_webhooks.adapters.mailer import disabled_email

    ep = rules.after_failure(
        rules.after_failure(endpoint(customer="acme"), T0, timedelta(days=5)),
        T0 + timedelta(days=5),
        timedelta(days=5),
    )
    mail = disabled_email(ep, "Billing <billing@example.com>", ["ops@example.com", "b@x.example"])
    assert mail["Subject"] == "Webhook endpoint disabled: https://erp.example/hooks"
    assert mail["To"] == "ops@example.com, b@x.example"
    text = mail.get_content()
    assert "customer acme" in text
    assert "every delivery failed for 5.0 days" in text
    assert f"billing webhooks enable {ep.endpoint_id}" in text
