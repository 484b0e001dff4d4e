"""The reviewer page in a real browser: log in, work the queue, change a red case, confirm with keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveServer
from tests.browser.seed import RED_GAS, RED_WAGES
from tests.keys import INTAKE_KEY, REVIEWER_KEY

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTE = "现场核实：燃气公司已到场关阀，仍需跟进"


def log_in(page: Any, server: LiveServer, key: str = REVIEWER_KEY) -> None:
    page.goto(f"{server.url}/review")
    assert "/review/login" in page.url  # no session: sent to the login form
    page.fill("#api_key", key)
    page.click("#login-form button[type=submit]")


def test_review_a_red_case_then_confirm_and_next_by_keyboard(
    page: Any, live_server: LiveServer, artifacts: Path
) -> None:
    log_in(page, live_server)
    page.wait_for_url(f"{live_server.url}/review")
    assert page.locator("h1").first.inner_text().startswith("待审核队列")
    rows = page.locator("table.queue tbody tr")
    assert rows.first.get_attribute("data-case-id") == RED_GAS.case_id  # red first, oldest first
    assert rows.first.locator(".badge").inner_text() == "红"
    assert page.locator('[data-priority="red"]').inner_text() == "2"
    page.screenshot(path=str(artifacts / "review-queue.png"), full_page=True)

    # Open the red case: the cue phrases are highlighted with their rubric criterion.
    rows.first.locator("a.case-link").click()
    page.wait_for_url(re.compile(rf"/review/cases/{RED_GAS.case_id}$"))
    marks = page.locator("mark.cue-red")
    assert marks.count() == 2 and marks.first.inner_text() == "燃气味"
    assert "危及生命" in (marks.first.get_attribute("title") or "")
    assert "随时可能出事" in page.locator(".case-body mark").all_inner_texts()
    # Its first reason is the rubric criterion it meets, with the phrase that shows it.
    first_reason = page.locator("ul.reasons li").first
    assert "criterion-reason" in (first_reason.get_attribute("class") or "")
    assert "符合红色标准1「危及生命或人身安全」" in first_reason.inner_text()

    # Change its level to yellow with a note; the page comes back with the decision kept.
    page.select_option("#level", "yellow")
    page.fill("#note", NOTE)
    page.click("#save-change")
    page.wait_for_selector(".flash")
    assert page.locator(".flash").inner_text() == "已保存修改。"
    page.reload()
    assert page.locator(".flash").count() == 0  # the message was shown once
    assert page.locator(".status.done").inner_text() == "已审核"
    review_row = page.locator("#audit tr.audit-review").first
    cells = review_row.locator("td").all_inner_texts()
    assert cells[1] == "reviewer-li" and cells[2].startswith("修改")
    assert cells[3] == RED_GAS.department and cells[4] == "黄" and cells[5] == NOTE
    page.screenshot(path=str(artifacts / "case-view.png"), full_page=True)

    # Keyboard: the next pending case is the other red one; keys typed into a field do nothing.
    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf"/review/cases/{RED_WAGES.case_id}$"))
    page.click("#note")
    page.keyboard.type("cn")
    assert page.input_value("#note") == "cn"
    assert page.url.endswith(RED_WAGES.case_id) and page.locator(".flash").count() == 0
    page.locator("h1").first.click()  # leave the field
    page.keyboard.press("e")
    assert page.evaluate("document.activeElement.id") == "department"
    page.locator("h1").first.click()
    page.keyboard.press("c")
    page.wait_for_selector(".flash")
    assert page.locator(".flash").inner_text() == "已确认模型结果。"
    confirmed = page.locator("#audit tr.audit-review").first.locator("td").all_inner_texts()
    assert confirmed[2].startswith("确认") and confirmed[4] == "红"
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"/review/cases/WEB-YELLOW-1$"))

    page.goto(f"{live_server.url}/review")
    assert RED_WAGES.case_id not in page.locator("table.queue").inner_text()
    assert page.locator('[data-priority="red"]').inner_text() == "0"
    assert not [e for e in page.console_errors if "Content Security Policy" in e], page.console_errors


def test_an_intake_key_cannot_log_in_and_logout_ends_the_session(page: Any, live_server: LiveServer) -> None:
    log_in(page, live_server, INTAKE_KEY)
    assert page.locator("h1").inner_text() == "无权访问"
    log_in(page, live_server)
    page.wait_for_url(f"{live_server.url}/review")
    page.goto(f"{live_server.url}/dashboard")
    assert page.locator("#chart-level svg rect").count() > 0
    page.click("#logout")
    page.wait_for_url(re.compile(r"/review/login$"))
    page.goto(f"{live_server.url}/review")
    assert "/review/login" in page.url
