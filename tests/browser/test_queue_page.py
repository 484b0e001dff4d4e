"""The queue's search, select-all and bulk confirmation in a real browser (issue 14, item 9)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveServer
from tests.browser.seed import RED_GAS, RED_WAGES
from tests.keys import REVIEWER_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_search_then_select_all_and_confirm(page: Any, live_server: LiveServer, artifacts: Path) -> None:
    page.goto(f"{live_server.url}/review")
    page.fill("#api_key", REVIEWER_KEY)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/review")
    page.fill("#q", "工人")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"/review\?.*q=%E5%B7%A5%E4%BA%BA"))
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-case-id") == RED_WAGES.case_id
    page.screenshot(path=str(artifacts / "queue-search.png"), full_page=True)

    page.goto(f"{live_server.url}/review?level=red")
    page.check("#select-all")
    assert page.locator("input.pick:checked").count() == 2  # the script ticked the page's cases
    page.click("#bulk-confirm")
    page.wait_for_selector(".flash")
    assert "已批量确认 2 件" in page.locator(".flash").inner_text()
    assert page.url.endswith("/review?level=red")
    assert page.locator('[data-priority="red"]').inner_text() == "0"
    page.goto(f"{live_server.url}/review/cases/{RED_GAS.case_id}")
    assert page.locator(".status.done").inner_text() == "已审核"
