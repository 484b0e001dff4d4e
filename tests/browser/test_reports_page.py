"""The admins' `/reports` page in a real browser (issue 16, item 4): a period picked in the form, the report's
figures as the API reports them, charts that load under the page's CSP, the PDF download, and the
dashboard's districts x level, department x level and overdue ranking (item 5). Screenshots are kept in
test-artifacts/."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.dependencies import services_of
from tests.browser.conftest import LiveServer
from tests.keys import ADMIN, ADMIN_KEY, REVIEWER_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def log_in(page: Any, server: LiveServer, key: str, target: str) -> None:
    page.goto(f"{server.url}{target}")
    page.fill("#api_key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(re.escape(server.url + target.split("?")[0])))


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def with_warnings(live_server: LiveServer) -> LiveServer:
    """The seeded red and yellow cases have their warnings (the service's issuer runs every half second)."""
    book = services_of(live_server.app).warnings.book
    deadline = time.monotonic() + 20
    while book.summary().total < 2:
        assert time.monotonic() < deadline, "the issuer issued no warning for the seeded cases"
        time.sleep(0.2)
    return live_server


@pytest.mark.parametrize("width", [1366, 800])
def test_an_admin_picks_a_period_and_reads_the_report_the_api_reports(
    browser: Any, with_warnings: LiveServer, artifacts: Path, width: int
) -> None:
    server = with_warnings
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    try:
        log_in(page, server, ADMIN_KEY, "/reports")
        assert page.locator(".report-head h1").inner_text() == "形势周报"
        page.select_option("#report-period", "month")
        page.click(".report-form button[type=submit]")
        page.wait_for_url(re.compile(r"/reports\?period=month"))
        assert page.locator(".report-head h1").inner_text() == "月报"
        day = page.input_value("#report-date")
        summary = httpx.get(f"{server.url}/v1/reports/summary", params={"period": "month", "date": day},
                            headers=ADMIN, timeout=30).json()
        text = squeeze(page.locator(".report-summary").inner_text())
        assert f"本期共受理案件{summary['cases']['total']}件" in text
        assert f"本期发出预警单{summary['warnings']['issued']}件" in text
        assert summary["cases"]["total"] > 0 and summary["warnings"]["issued"] > 0
        # Every chart is a data-URI image the CSP allows, and it loaded.
        images = page.eval_on_selector_all(".report img", "els => els.map(e => [e.src.slice(0, 26), e.naturalWidth])")
        assert images and all(src == "data:image/svg+xml;base64," and w > 0 for src, w in images), images
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=str(artifacts / f"reports-{width}.png"), full_page=True)
        if width == 1366:
            with page.expect_download() as download:
                page.click("#download-pdf")
            saved = artifacts / "report-month.pdf"
            download.value.save_as(saved)
            assert saved.read_bytes().startswith(b"%PDF")
        assert not errors, errors
    finally:
        context.close()


def test_a_reviewer_cannot_open_reports_and_does_not_see_the_link(browser: Any, with_warnings: LiveServer) -> None:
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        log_in(page, with_warnings, REVIEWER_KEY, "/review")
        assert page.locator("a[href='/reports']").count() == 0
        answer = page.goto(f"{with_warnings.url}/reports")
        assert answer is not None and answer.status == 403
        assert "仅管理员可见" in page.inner_text("main")
    finally:
        context.close()


def test_the_dashboard_shows_where_and_in_which_fields_risk_concentrates(
    browser: Any, with_warnings: LiveServer, artifacts: Path
) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    try:
        log_in(page, with_warnings, ADMIN_KEY, "/dashboard")
        summary = services_of(with_warnings.app).warnings.book.summary()
        rows = page.eval_on_selector_all("#department-levels tbody tr",
                                         "rs => rs.map(r => [...r.cells].map(c => c.innerText))")
        shown = {name: (int(red), int(yellow), int(total)) for name, red, yellow, total in rows}
        levels = summary.department_level
        assert shown == {d: (levels.get((d, "red"), 0), levels.get((d, "yellow"), 0), n)
                         for d, n in summary.by_department.items()}
        districts = page.eval_on_selector_all("#district-levels tbody td:first-child", "cs => cs.map(c => c.innerText)")
        assert len(districts) == len(summary.by_district)
        assert page.locator("#overdue-ranking").is_visible()
        page.locator("#where-h").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "dashboard-risk-concentration.png"), full_page=True)
    finally:
        context.close()
