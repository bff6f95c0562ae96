"""In a real browser (Debian's Chromium through Playwright): an open three-dot menu and the pay
pop-up are drawn above every row and the table, wherever the row is (the first, the last of a
long list), so each of their items is what a click at its place reaches.

The portal runs in process (uvicorn) over in-memory users and the fake billing API with a
page of invoices; screenshots go to the test's directory for a person to look at.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from playwright.async_api import Page, async_playwright
from portal_fakes import FakeBillingApi, invoice

from billing_portal.adapters.memory import InMemoryFailureCounter, InMemoryUserStore
from billing_portal.adapters.passwords import Argon2Passwords
from billing_portal.domain.users import Role
from billing_portal.entrypoints.web import portal_app
from billing_portal.service.accounts import AccountPorts, add_user, set_password

CHROMIUM = Path(os.environ.get("BILLING_CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery"
ROWS = 14

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def portal() -> AsyncIterator[str]:
    fast = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    ports = AccountPorts(InMemoryUserStore(), InMemoryFailureCounter(), Argon2Passwords(fast))
    _, token = await add_user(
        ports, "ann@alpha.example", Role.CUSTOMER, "alpha", now=datetime.now(UTC)
    )
    await set_password(ports, token, PASSWORD, datetime.now(UTC))
    api = FakeBillingApi()
    api.invoices = [
        invoice(f"CCR-2024-{n:06d}", "alpha", f"{n}.00", "finalized", "2999-10-31")
        for n in range(1, ROWS + 1)
    ]
    app = portal_app(accounts=ports, api=api, session_key="k" * 40, secure_cookies=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def _topmost_inside(page: Page, item_selector: str, container_selector: str) -> list[str]:
    """The texts of the items that are NOT what a click at their centre reaches."""
    hidden: list[str] = await page.evaluate(
        """([items, container]) => {
            const box = document.querySelector(container);
            return [...document.querySelectorAll(items)].filter((item) => {
                const r = item.getBoundingClientRect();
                const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
                return !(hit && box.contains(hit));
            }).map((item) => item.textContent.trim());
        }""",
        [item_selector, container_selector],
    )
    return hidden


async def test_an_open_menu_and_the_pay_pop_up_are_above_every_row(
    portal: str, tmp_path: Path
) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: apt-get install chromium"  # noqa: ASYNC240
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{portal}/login")
            await page.fill("input[name=email]", "ann@alpha.example")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(re.compile(r".*/invoices$"))
            rows = page.locator("tr[data-number]:not(.credit-note)")
            assert await rows.count() == ROWS
            for which in (0, ROWS - 1):
                row = rows.nth(which)
                await row.locator("details.menu summary").click()
                menu = f"tr[data-number='{await row.get_attribute('data-number')}'] details.menu"
                await page.locator(f"{menu} ul").scroll_into_view_if_needed()
                await page.screenshot(path=str(tmp_path / f"menu-row-{which}.png"))
                hidden = await _topmost_inside(page, f"{menu} li a", f"{menu} ul")
                assert hidden == [], f"menu of row {which}: hidden under the page: {hidden}"
                button = await page.locator(f"{menu} summary").bounding_box()
                listed = await page.locator(f"{menu} ul").bounding_box()
                assert button is not None
                assert listed is not None
                assert listed["y"] >= button["y"] + button["height"]  # below its button
                await page.keyboard.press("Escape")
            await rows.nth(1).locator("details.menu summary").click()
            await rows.nth(1).locator("a[data-popup]").click()
            dialog = page.locator("dialog#popup")
            await dialog.wait_for(state="visible")
            await page.screenshot(path=str(tmp_path / "pay-popup.png"))
            hidden = await _topmost_inside(page, "dialog#popup h2, dialog#popup li", "dialog#popup")
            assert hidden == [], f"the pop-up is hidden under the page: {hidden}"
        finally:
            await browser.close()
