"""The reviewer pages at 1366 px and at 800 px, in a real browser (issue 14, items 8-10).

At 800 px the queue's department column used to collapse to one character per line and the dashboard's
alert headers wrapped per character; model metrics kept their English keys and the training time was
raw UTC. Screenshots of each page at both widths are kept in test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.dependencies import services_of
from tests.browser.conftest import LiveServer
from tests.browser.seed import RED_GAS, RED_WAGES, YELLOW_NOISE
from tests.keys import REVIEWER, REVIEWER_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WIDTHS = (1366, 800)


@pytest.fixture(scope="module")
def with_alert_and_review(live_server: LiveServer) -> LiveServer:
    """A hot-issue alert for the dashboard's table, and a reviewed case (changed from yellow to green)."""
    store = services_of(live_server.app).store
    members = [RED_GAS.case_id, RED_WAGES.case_id, YELLOW_NOISE.case_id]
    store.add_alert("hot-WEB-RED-1:yellow", "hot-WEB-RED-1", "yellow", datetime(2026, 11, 2, 6, tzinfo=UTC), {
        "place": "兰亭苑小区", "keywords": ["燃气", "地下室", "燃气味", "物业", "兰亭"], "cases": 3, "reporters": 3,
        "member_case_ids": members, "first_case_id": members[0], "last_case_id": members[-1],
    })
    answer = httpx.post(f"{live_server.url}/v1/cases/{YELLOW_NOISE.case_id}/reviews", headers=REVIEWER, timeout=30,
                        json={"action": "change", "level": "green", "note": "已协调整改，不再扰民"})
    assert answer.status_code == 201, answer.text
    return live_server


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def sized_page(request: pytest.FixtureRequest, browser: Any, with_alert_and_review: LiveServer) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": request.param, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.width = request.param  # type: ignore[attr-defined]
    page.goto(f"{with_alert_and_review.url}/review")
    page.fill("#api_key", REVIEWER_KEY)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(f"{with_alert_and_review.url}/review")
    try:
        yield page
    finally:
        context.close()


def no_page_scroll(page: Any) -> None:
    """Nothing spills out of the window sideways (a wide table scrolls in its own box)."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def single_line(page: Any, selector: str) -> None:
    """Every element is one line of text high (a column squeezed to a character per line is several)."""
    heights = page.eval_on_selector_all(
        selector, "els => els.map(e => [e.textContent.trim(), e.getBoundingClientRect().height, "
                  "parseFloat(getComputedStyle(e).lineHeight)])")
    assert heights, selector
    for text, height, line in heights:
        assert height < 2 * line + 12, f"{selector} {text!r} is {height:.0f} px high (line {line:.0f} px)"


def test_the_queue_keeps_every_column_readable(sized_page: Any, artifacts: Path) -> None:
    page = sized_page
    single_line(page, "table.queue tbody td:nth-child(4)")  # the department
    single_line(page, "table.queue thead th")
    no_page_scroll(page)
    # The case column gives way: its preview is cut with an ellipsis, never the department.
    preview = page.locator("table.queue .meta").first
    assert preview.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    page.screenshot(path=str(artifacts / f"queue-{page.width}.png"), full_page=True)


def test_the_dashboard_reads_in_chinese_and_beijing_time(sized_page: Any, artifacts: Path,
                                                          live_server: LiveServer) -> None:
    page = sized_page
    page.goto(f"{live_server.url}/dashboard")
    single_line(page, "table.alerts thead th")
    assert page.locator("table.alerts tbody tr").count() == 1
    names = page.locator("table.metrics td:first-child").all_inner_texts()
    assert names == ["部门宏平均 F1"]  # the demo bundle logs macro_f1 only
    assert page.locator("table.metrics td:first-child").first.get_attribute("title") == "macro_f1"
    assert page.locator(".trained-at").inner_text() == "2026-01-01 08:00"  # 00:00 UTC
    no_page_scroll(page)
    page.screenshot(path=str(artifacts / f"dashboard-{page.width}.png"), full_page=True)


def test_a_reviewed_case_leads_with_the_decided_level(sized_page: Any, artifacts: Path,
                                                      live_server: LiveServer) -> None:
    page = sized_page
    page.goto(f"{live_server.url}/review/cases/{YELLOW_NOISE.case_id}")
    head = page.locator(".case-head h1")
    assert head.locator(".badge").first.inner_text() == "绿"  # the reviewer's decision
    assert "黄" in head.locator(".model-level").inner_text()  # the model's, secondary
    no_page_scroll(page)
    page.screenshot(path=str(artifacts / f"case-reviewed-{page.width}.png"), full_page=True)
