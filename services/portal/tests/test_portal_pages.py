"""The portal's pages over in-memory users and a fake billing API (httpx against the app):
sign-in, sessions, CSRF, headers, the customer list, the pay pop-up, scope, the ZIP."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from argon2 import PasswordHasher
from portal_fakes import FakeBillingApi

from billing_portal.adapters.memory import InMemoryFailureCounter, InMemoryUserStore
from billing_portal.adapters.passwords import Argon2Passwords
from billing_portal.domain.i18n import MESSAGES
from billing_portal.domain.users import LANGUAGES, Role
from billing_portal.entrypoints.web import portal_app
from billing_portal.service.accounts import AccountPorts, add_user, disable_user, set_password
from billing_runtime.audit import InMemoryAuditTrail

PASSWORD = "correct horse battery"
KEY = "k" * 40


class Browser:
    def __init__(
        self,
        client: httpx.AsyncClient,
        api: FakeBillingApi,
        ports: AccountPorts,
        audit: InMemoryAuditTrail,
    ) -> None:
        self.client = client
        self.api = api
        self.ports = ports
        self.audit = audit

    async def csrf(self, path: str = "/login") -> str:
        page = await self.client.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        token = await self.csrf()
        return await self.client.post(
            "/login", data={"csrf": token, "email": email, "password": password}
        )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    ports = AccountPorts(InMemoryUserStore(), InMemoryFailureCounter(), Argon2Passwords(fast))
    now = datetime.now(UTC)
    for email, role, customer in (
        ("ann@alpha.example", Role.CUSTOMER, "alpha"),
        ("op@example.com", Role.OPERATOR, None),
    ):
        _, token = await add_user(ports, email, role, customer, now=now)
        await set_password(ports, token, PASSWORD, now)
    api = FakeBillingApi()
    audit = InMemoryAuditTrail()
    app = portal_app(accounts=ports, api=api, session_key=KEY, secure_cookies=False, audit=audit)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
        yield Browser(client, api, ports, audit)


async def test_a_password_set_through_the_link_is_recorded_in_the_audit_trail(
    browser: Browser,
) -> None:
    _, token = await add_user(
        browser.ports, "bob@alpha.example", Role.CUSTOMER, "alpha", now=datetime.now(UTC)
    )
    csrf = await browser.csrf(f"/set-password/{token}")
    done = await browser.client.post(
        f"/set-password/{token}", data={"csrf": csrf, "password": PASSWORD}
    )
    assert done.status_code == 303
    [(audit_id, entry)] = browser.audit.entries
    assert (entry.action, entry.actor, entry.subject, entry.customer_id) == (
        "user.password_set", "user:bob@alpha.example", "user:bob@alpha.example", "alpha",
    )  # fmt: skip
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["password_set"], entry.after["password_set"]) == (False, True)
    assert "argon2" not in str(entry.model_dump())  # never the hash
    assert audit_id is not None
    assert audit_id.startswith("user.password_set:bob@alpha.example:")
    again = await browser.client.post(
        f"/set-password/{token}", data={"csrf": csrf, "password": PASSWORD}
    )
    assert again.status_code == 404  # a used link changes nothing and records nothing
    assert len(browser.audit.entries) == 1


async def test_a_disabled_user_is_signed_out_and_cannot_sign_in_again(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    assert (await browser.client.get("/invoices")).status_code == 200
    await disable_user(browser.ports, "ann@alpha.example")
    answer = await browser.client.get("/invoices")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    refused = await browser.sign_in("ann@alpha.example")
    assert refused.status_code == 401


async def test_pages_need_a_session_and_sign_in_starts_one(browser: Browser) -> None:
    answer = await browser.client.get("/invoices")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    signed = await browser.sign_in("ann@alpha.example")
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    page = await browser.client.get("/invoices")
    assert page.status_code == 200
    assert "CCR-2024-000001" in page.text
    assert "CCR-2024-000009" not in page.text


async def test_every_page_carries_the_security_headers(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    page = await browser.client.get("/invoices")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    assert "onclick" not in page.text


async def test_a_wrong_password_and_a_form_without_its_csrf_token_are_refused(
    browser: Browser,
) -> None:
    wrong = await browser.sign_in("ann@alpha.example", "not the password")
    assert wrong.status_code == 401
    assert "Wrong email address or password" in wrong.text
    forged = await browser.client.post(
        "/login", data={"csrf": "forged", "email": "ann@alpha.example", "password": PASSWORD}
    )
    assert forged.status_code == 404
    assert (await browser.client.get("/invoices")).status_code == 303  # still signed out


async def test_the_list_marks_paid_and_overdue_rows_and_offers_pay_only_when_owed(
    browser: Browser,
) -> None:
    await browser.sign_in("ann@alpha.example")
    page = (await browser.client.get("/invoices")).text
    rows = dict(re.findall(r'<tr data-number="([^"]+)"(.*?)</tr>', page, re.S))
    assert 'class="tick"' in rows["CCR-2024-000002"]
    assert "0.00" in rows["CCR-2024-000002"]
    assert "Overdue" in rows["CCR-2024-000003"]
    assert 'class="tick"' not in rows["CCR-2024-000003"]
    assert "/invoices/CCR-2024-000001/pay" in rows["CCR-2024-000001"]
    assert "/pay" not in rows["CCR-2024-000002"]


async def test_credit_notes_are_listed_beside_the_invoices_newest_first(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    page = (await browser.client.get("/invoices")).text
    numbers = re.findall(r'<tr data-number="([^"]+)"', page)
    assert numbers[0] == "CCR-CN-2024-000001"  # 2024-10-15, after the invoices of 2024-10-01
    row = page[page.index('data-number="CCR-CN-2024-000001"') :].split("</tr>")[0]
    assert "Credit note" in row
    assert "-€5.00" in row
    assert "on CCR-2024-000003" in row
    assert 'type="checkbox"' not in row  # nothing to download as a PDF yet


async def test_the_pay_popup_shows_the_apis_dues(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    popup = await browser.client.get("/invoices/CCR-2024-000001/pay", headers={"X-Fragment": "1"})
    assert popup.status_code == 200
    assert "<html" not in popup.text
    for text in ("€110.00", "VAT 19%", "€20.90", "€130.90", "SEPA transfer", "IBAN DE00 1234"):
        assert text in popup.text


async def test_another_customers_invoice_pdf_and_dues_answer_404(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    for path in (
        "/invoices/CCR-2024-000009/pdf",
        "/invoices/CCR-2024-000009/csv",
        "/invoices/CCR-2024-000009/pay",
        "/console/report",
    ):
        answer = await browser.client.get(path)
        assert answer.status_code == 404, path
        assert "beta" not in answer.text


async def test_the_pdf_is_served_inline_or_as_a_download(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    inline = await browser.client.get("/invoices/CCR-2024-000001/pdf")
    assert inline.content == b"%PDF-1.7 CCR-2024-000001"
    assert inline.headers["content-disposition"].startswith("inline")
    download = await browser.client.get("/invoices/CCR-2024-000001/pdf?download=1")
    assert download.headers["content-disposition"].startswith("attachment")


async def test_selected_pdfs_download_as_one_zip(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    token = await browser.csrf("/invoices")
    answer = await browser.client.post(
        "/invoices/zip",
        data={"csrf": token, "numbers": ["CCR-2024-000001", "CCR-2024-000002"]},
    )
    assert answer.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    assert names == ["CCR-2024-000001.pdf", "CCR-2024-000002.pdf"]


async def test_the_contact_rule_comes_back_as_a_clear_message(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    token = await browser.csrf("/account?tab=contact")
    answer = await browser.client.post(
        "/account/contacts/ap%40alpha.example/delete", data={"csrf": token}
    )
    assert answer.headers["location"] == "/account?tab=contact"
    page = await browser.client.get("/account?tab=contact")
    assert "keeps one Billing contact" in page.text


async def test_sign_out_ends_the_session(browser: Browser) -> None:
    await browser.sign_in("ann@alpha.example")
    token = await browser.csrf("/invoices")
    await browser.client.post("/logout", data={"csrf": token})
    assert (await browser.client.get("/invoices")).status_code == 303


async def test_operators_land_on_the_console_and_customers_cannot_pay_there(
    browser: Browser,
) -> None:
    signed = await browser.sign_in("op@example.com")
    assert (await browser.client.get(signed.headers["location"])).headers["location"] == (
        "/console/report"
    )
    await browser.client.post("/logout", data={"csrf": await browser.csrf("/console/invoices")})
    await browser.sign_in("ann@alpha.example")
    assert (await browser.client.get("/console/invoices")).status_code == 404


def test_every_text_is_written_in_every_language() -> None:
    for key, texts in MESSAGES.items():
        assert sorted(texts) == sorted(LANGUAGES), key


def test_money_and_dates_are_written_for_the_language_and_the_currency() -> None:
    from billing_portal.domain.i18n import day, language_of, money

    assert money("1234.56", "EUR", "de") == "1.234,56\xa0€"
    assert money("1234.56", "EUR", "fr") == "1\u202f234,56\xa0€"
    assert money("1234.56", "USD", "en") == "$1,234.56"
    assert money("1234", "JPY", "en") == "¥1,234"
    assert day("2024-10-01", "de") == "01.10.2024"
    assert day("2024-10-01", "en") == "Oct 1, 2024"
    assert language_of(None, "fr-CH,fr;q=0.9,en;q=0.5") == "fr"
    assert language_of("de", "fr") == "de"
    assert language_of(None, "es") == "en"


def _margin_row(provider: str, service: str, cost: str, price: str) -> dict[str, str | None]:
    margin = str(Decimal(price) - Decimal(cost))
    return {
        "customer_id": "alpha", "provider": provider, "service_name": service, "currency": "EUR",
        "cost_currency": "EUR", "charge_count": "1", "cost": cost, "cost_converted": cost,
        "price": price, "margin": margin, "margin_percent": None,
    }  # fmt: skip


async def test_the_report_drills_down_by_provider_then_service_and_lists_the_periods_bills(
    browser: Browser,
) -> None:
    browser.api.margin_rows = [
        _margin_row("AWS", "Amazon EC2", "80.00", "100.00"),
        _margin_row("AWS", "Amazon S3", "7.50", "10.00"),
        _margin_row("Azure", "Virtual Machines", "20.00", "30.00"),
    ]
    bill = {"format": "aws_cur", "status": "processed"}
    browser.api.bills_loaded = [
        bill | {"bill_id": "b-1", "file_name": "aws-2024-09.csv", "rows_read": 10,
                "rows_accepted": 8, "rows_rejected": 2, "billing_periods": ["2024-09"]},
        bill | {"bill_id": "b-2", "file_name": "aws-2024-10.csv", "rows_read": 5,
                "rows_accepted": 5, "rows_rejected": 0, "billing_periods": ["2024-10"]},
    ]  # fmt: skip
    await browser.sign_in("op@example.com")
    page = (await browser.client.get("/console/report?period=2024-09")).text
    assert ("op@example.com", "GET", "/v1/bills", {"period": "2024-09"}) in browser.api.calls
    providers = dict(re.findall(r'data-provider="([^"]+)">(.*?)</tbody>', page, re.S))
    assert set(providers) == {"AWS", "Azure"}
    sums = re.findall(r'<td class="num">([^<]+)</td>', providers["AWS"].split("</tr>")[0])
    assert sums == ["€87.50", "€110.00", "€22.50"]  # EC2 + S3
    assert "Amazon S3" in providers["AWS"]
    assert "Amazon S3" not in providers["Azure"]
    assert "Virtual Machines" in providers["Azure"]
    bills = dict(re.findall(r'<tr data-bill="([^"]+)"[^>]*>(.*?)</tr>', page, re.S))
    assert set(bills) == {"b-1"}  # only the period's
    assert re.findall(r'<td class="num">(\d+)</td>', bills["b-1"]) == ["10", "8", "2"]
