"""The reviewer pages without a browser: login and session, CSRF, escaping, highlighting, headers, reviews."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from features.text import case_text
from serving.app import create_app
from serving.auth import KeyRing, Principal, Role
from serving.dependencies import services_of
from serving.settings import Settings
from serving.web.present import highlight
from serving.web.session import SESSION_COOKIE, session_principal, session_secret
from store import Store
from tests.browser.seed import GREEN_QUESTION, RED_GAS, RED_WAGES, YELLOW_NOISE, SeedCase, store_case, store_seeds
from tests.keys import ADMIN_KEY, API_KEYS, INTAKE, INTAKE_KEY, REVIEWER, REVIEWER_KEY

HOSTILE_TITLE = "<script>alert('x')</script>燃气泄漏"
HOSTILE = SeedCase("WEB-HOSTILE-1", HOSTILE_TITLE, '楼道里<img src=x onerror="alert(1)">有燃气泄漏的味道 & 很呛', "red")


@pytest.fixture(scope="module")
def app_client(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("web-pages") / "triage.db"
    app = create_app(Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{database}"))
    with TestClient(app) as client:
        store_seeds(services_of(client.app).store)
        store_case(services_of(client.app).store, HOSTILE)
        answer = client.post("/v1/triage", headers=INTAKE, json={
            "case_id": "WEB-API-HOSTILE", "title": "<script>alert(2)</script>", "body": "小区垃圾无人清运"})
        assert answer.status_code == 200, answer.text
        yield client


@pytest.fixture(scope="module")
def store(app_client: TestClient) -> Store:
    return services_of(app_client.app).store


def new_client(app_client: TestClient) -> TestClient:
    """Another browser: its own cookies, the same running app."""
    return TestClient(app_client.app)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def log_in(client: TestClient, key: str = REVIEWER_KEY, next_url: str = "/review") -> Any:
    token = csrf_of(client.get("/review/login").text)
    return client.post(
        "/review/login", data={"csrf_token": token, "api_key": key, "next": next_url}, follow_redirects=False
    )


@pytest.fixture
def reviewer(app_client: TestClient) -> TestClient:
    client = new_client(app_client)
    assert log_in(client).status_code == 303
    return client


def post_review(client: TestClient, case_id: str, store: Store, **fields: str) -> Any:
    page = client.get(f"/review/cases/{case_id}")
    latest = store.latest_prediction(case_id)
    assert latest is not None
    data = {"csrf_token": csrf_of(page.text), "prediction_id": str(latest.id), **fields}
    return client.post(f"/review/cases/{case_id}/reviews", data=data, follow_redirects=False)


# -- login, session, logout ------------------------------------------------------------------------
def test_pages_send_strangers_to_the_login_form_and_the_api_still_answers_401(app_client: TestClient) -> None:
    client = new_client(app_client)
    for path in ("/review", "/review/cases/WEB-RED-1?from=queue", "/dashboard"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/review/login?next=")
    assert client.get("/review/cases/WEB-RED-1?from=queue", follow_redirects=False).headers["location"] == (
        "/review/login?next=%2Freview%2Fcases%2FWEB-RED-1%3Ffrom%3Dqueue"
    )
    api = client.get("/v1/alerts", follow_redirects=False)
    assert api.status_code == 401 and "X-API-Key" in api.json()["detail"]


def test_login_gives_a_signed_httponly_strict_cookie_holding_the_principal_not_the_key(
    app_client: TestClient,
) -> None:
    client = new_client(app_client)
    answer = log_in(client, next_url="/review/cases/WEB-RED-1")
    assert answer.status_code == 303 and answer.headers["location"] == "/review/cases/WEB-RED-1"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    payload = json.loads(base64.b64decode(cookie.split("=", 1)[1].split(".", 1)[0]))
    assert payload["name"] == "reviewer-li" and payload["role"] == "reviewer"
    assert REVIEWER_KEY not in json.dumps(payload) and "key" not in payload
    page = client.get("/review")
    assert page.status_code == 200 and "reviewer-li" in page.text and "待审核队列" in page.text
    again = client.get("/review/login?next=/dashboard", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/dashboard"  # already logged in
    # The session authenticates pages only: the API still wants its key.
    assert client.get("/v1/alerts").status_code == 401


def test_a_tampered_cookie_is_not_a_session(app_client: TestClient) -> None:
    client = new_client(app_client)
    answer = log_in(client)
    value = answer.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    data, signature = value.split(".", 1)
    forged = json.loads(base64.b64decode(data)) | {"role": "admin", "name": "ops"}
    forged_value = base64.b64encode(json.dumps(forged).encode()).decode() + "." + signature
    stranger = new_client(app_client)
    stranger.cookies.set(SESSION_COOKIE, forged_value)
    assert stranger.get("/review", follow_redirects=False).status_code == 303


def test_logout_needs_the_csrf_token_and_ends_the_session(reviewer: TestClient) -> None:
    assert reviewer.post("/review/logout", data={}, follow_redirects=False).status_code == 403
    assert reviewer.get("/review").status_code == 200
    token = csrf_of(reviewer.get("/review").text)
    answer = reviewer.post("/review/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/review/login"
    assert reviewer.get("/review", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_for_a_copied_cookie_too(app_client: TestClient) -> None:
    """The cookie is revoked in the store, not only forgotten by the browser that logged out."""
    browser = new_client(app_client)
    assert log_in(browser).status_code == 303
    copied = dict(browser.cookies)
    token = csrf_of(browser.get("/review").text)
    assert browser.post("/review/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    thief = new_client(app_client)
    thief.cookies.update(copied)
    answer = thief.get("/review", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/review/login")
    refused = thief.post("/review/cases/WEB-RED-1/reviews", data={"csrf_token": token, "action": "confirm"},
                         follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/review/login")


def test_a_session_ends_eight_hours_after_login_however_often_it_was_re_signed(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import serving.web.session as session_module

    browser = new_client(app_client)
    assert log_in(browser).status_code == 303
    assert browser.get("/review", follow_redirects=False).status_code == 200
    real_time = session_module.time.time
    monkeypatch.setattr(session_module.time, "time", lambda: real_time() + session_module.SESSION_MAX_AGE_S - 60)
    assert browser.get("/review", follow_redirects=False).status_code == 200  # re-signed on the way
    monkeypatch.setattr(session_module.time, "time", lambda: real_time() + session_module.SESSION_MAX_AGE_S + 1)
    answer = browser.get("/review", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/review/login")


def test_wrong_key_intake_key_and_missing_csrf_are_refused(app_client: TestClient) -> None:
    client = new_client(app_client)
    wrong = log_in(client, "not-a-configured-key-at-all")
    assert wrong.status_code == 401 and "密钥无效" in wrong.text
    intake = log_in(client, INTAKE_KEY)
    assert intake.status_code == 403 and "无权访问" in intake.text
    assert "审核员或管理员" in intake.text  # says which keys may log in
    no_csrf = client.post("/review/login", data={"api_key": REVIEWER_KEY}, follow_redirects=False)
    assert no_csrf.status_code == 403
    assert client.get("/review", follow_redirects=False).status_code == 303  # none of these opened a session
    assert INTAKE_KEY not in intake.text and REVIEWER_KEY not in no_csrf.text  # a key is never echoed


@pytest.mark.parametrize(
    "target", ["https://evil.example/review", "//evil.example/review", "/v1/alerts", "/\\evil.example", "review"]
)
def test_login_redirects_only_to_the_pages(app_client: TestClient, target: str) -> None:
    answer = log_in(new_client(app_client), next_url=target)
    assert answer.status_code == 303 and answer.headers["location"] == "/review"


def test_pages_also_take_the_api_key_header(app_client: TestClient) -> None:
    client = new_client(app_client)
    assert client.get("/review", headers=REVIEWER).status_code == 200
    assert client.get("/review", headers=INTAKE).status_code == 403
    assert client.get("/review", headers={"X-API-Key": "not-a-configured-key-at-all"}).status_code == 401


def test_the_session_secret_follows_the_keys_and_a_removed_key_ends_its_sessions() -> None:
    ring = KeyRing.from_spec(API_KEYS)
    same = KeyRing.from_spec(API_KEYS)
    rotated = KeyRing.from_spec(API_KEYS.replace(REVIEWER_KEY, "another-reviewer-key-0123456789"))
    assert session_secret(None, ring) == session_secret(None, same)  # every worker derives the same
    assert session_secret(None, ring) != session_secret(None, rotated)
    configured = "configured-secret-of-at-least-32-bytes"
    assert session_secret(configured, ring) == configured
    assert REVIEWER_KEY not in session_secret(None, ring)

    from types import SimpleNamespace

    from serving.web.session import open_session

    request = SimpleNamespace(session={})
    open_session(request, Principal("reviewer-li", Role.reviewer), ring, "s")  # type: ignore[arg-type]
    assert session_principal(request, ring, "s") == Principal("reviewer-li", Role.reviewer)  # type: ignore[arg-type]
    assert session_principal(request, rotated, "s") is None  # type: ignore[arg-type]  # the key was replaced
    without = KeyRing.from_spec(f"ops:admin:{ADMIN_KEY}")
    assert session_principal(request, without, "s") is None  # type: ignore[arg-type]  # the key was removed


# -- security headers and escaping -----------------------------------------------------------------
def test_pages_send_security_headers_and_the_api_docs_keep_theirs(reviewer: TestClient) -> None:
    for path in ("/review/login", "/review", "/review/cases/WEB-RED-1", "/dashboard", "/review/static/app.js"):
        headers = reviewer.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in reviewer.get("/docs").headers  # Swagger UI is left alone


def test_pages_have_no_inline_script_or_style(reviewer: TestClient) -> None:
    for path in ("/review", "/review/cases/WEB-RED-1", "/dashboard"):
        html = reviewer.get(path).text
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], path
        assert " style=" not in html and "<style" not in html and "onclick" not in html.lower(), path


def test_hostile_case_text_is_escaped_everywhere(reviewer: TestClient) -> None:
    case = reviewer.get(f"/review/cases/{HOSTILE.case_id}").text
    assert "<script>alert" not in case and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in case
    assert "<img src=x" not in case and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in case
    assert "&amp; 很呛" in case
    # The cue inside the hostile text is still highlighted, with its neighbours escaped around it.
    assert '&lt;/script&gt;<mark class="cue cue-red" title="红-1 危及生命或人身安全">燃气泄漏</mark>' in case
    queue = reviewer.get("/review").text
    assert "<script>alert" not in queue and "&lt;script&gt;alert(2)&lt;/script&gt;" in queue
    api_case = reviewer.get("/review/cases/WEB-API-HOSTILE").text
    assert "<script>alert(2)" not in api_case


# -- highlighting ----------------------------------------------------------------------------------
def marked(parts: list[Any]) -> list[tuple[str, str | None]]:
    return [(s.text, s.criterion) for s in parts if s.criterion]


def test_highlights_follow_the_cue_offsets_in_title_and_body() -> None:
    from tests.browser.seed import cue_reasons

    reasons = {"risk": cue_reasons(RED_GAS.title, RED_GAS.body)}
    text = highlight(RED_GAS.title, RED_GAS.body, reasons)
    assert "".join(s.text for s in text.title) == RED_GAS.title
    assert "".join(s.text for s in text.body) == case_text(RED_GAS.title, RED_GAS.body)[len(RED_GAS.title) + 1:]
    assert marked(text.title) == [("燃气味", "red-1")]
    assert marked(text.body) == [("燃气味", "red-1"), ("随时可能出事", "yellow-1")]
    assert text.skipped == 0


def test_highlight_skips_offsets_of_another_text_and_merges_overlaps() -> None:
    title, body = "燃气泄漏", "楼下燃气泄漏很危险"
    full = case_text(title, body)
    start = full.index("燃气泄漏", 1)
    reasons = {"risk": [
        {"kind": "cue", "text": "燃气泄漏", "criterion": "red-1", "start": start, "end": start + 4},
        {"kind": "cue", "text": "泄漏很", "criterion": "yellow-1", "start": start + 2, "end": start + 5},
        {"kind": "cue", "text": "别的文本", "criterion": "red-2", "start": 0, "end": 4},  # wrong text
        {"kind": "cue", "text": "x", "criterion": "red-2", "start": 40, "end": 41},  # out of range
        {"kind": "model", "text": "文本与红色案例相似", "start": None},
    ]}
    text = highlight(title, body, reasons)
    assert marked(text.title) == []
    assert marked(text.body) == [("燃气泄漏很", "red-1")]
    assert text.skipped == 2


def test_highlight_masks_phone_numbers_and_keeps_offsets_right() -> None:
    title, body = "电话13987654321燃气泄漏", "燃气泄漏"
    full = case_text(title, body)
    reasons = {"risk": [{"kind": "cue", "text": "燃气泄漏", "criterion": "red-1", "start": i, "end": i + 4}
                        for i in (full.index("燃气泄漏"), full.rindex("燃气泄漏"))]}
    text = highlight(title, body, reasons)
    assert "13987654321" not in "".join(s.text for s in text.title)
    assert marked(text.title) == [("燃气泄漏", "red-1")] and marked(text.body) == [("燃气泄漏", "red-1")]


# -- reviewing -------------------------------------------------------------------------------------
def test_the_case_page_shows_what_a_reviewer_needs(reviewer: TestClient) -> None:
    html = reviewer.get(f"/review/cases/{RED_WAGES.case_id}").text
    assert "劳动和社会保障" in html and "62.0%" in html  # department and confidence
    assert html.count('<tr><td>') >= 3  # the top 3
    assert "红-3 多人面临紧急损失" in html and "文中提到“拖欠60多名工人半年工资”" in html
    assert "文本整体与红色案例相似" in html  # the model reason in words
    assert 'id="next-case"' in html and "快捷键" in html and "<kbd>c</kbd>" in html
    assert reviewer.get("/review/cases/NO-SUCH-CASE").status_code == 404


def test_a_review_needs_the_csrf_token(reviewer: TestClient, store: Store) -> None:
    latest = store.latest_prediction(YELLOW_NOISE.case_id)
    assert latest is not None
    for token in (None, "forged-token-forged-token"):
        data = {"prediction_id": str(latest.id), "action": "confirm"}
        if token:
            data["csrf_token"] = token
        answer = reviewer.post(f"/review/cases/{YELLOW_NOISE.case_id}/reviews", data=data, follow_redirects=False)
        assert answer.status_code == 403 and "CSRF" in answer.text
    assert store.reviews_for(YELLOW_NOISE.case_id) == []


def test_a_change_without_a_note_is_shown_again_with_what_was_typed(reviewer: TestClient, store: Store) -> None:
    answer = post_review(reviewer, GREEN_QUESTION.case_id, store, action="change", level="yellow", note="  ")
    assert answer.status_code == 422
    assert "修改时必须填写备注" in answer.text
    assert '<option value="yellow" selected>' in answer.text  # the choice is kept
    unchanged = post_review(reviewer, GREEN_QUESTION.case_id, store, action="change", note="看过了")
    assert unchanged.status_code == 422 and "都与模型相同" in unchanged.text
    unknown = post_review(reviewer, GREEN_QUESTION.case_id, store, action="change", department="火星局", note="x")
    assert unknown.status_code == 422 and "请选择列表中的部门" in unknown.text
    assert store.reviews_for(GREEN_QUESTION.case_id) == []


def test_a_change_is_stored_shown_once_and_listed(reviewer: TestClient, store: Store) -> None:
    note = "核实后<b>不</b>紧急"
    answer = post_review(reviewer, GREEN_QUESTION.case_id, store, action="change", level="yellow",
                         department="教育文体", note=note)
    assert answer.status_code == 303 and answer.headers["location"] == f"/review/cases/{GREEN_QUESTION.case_id}"
    (review,) = store.reviews_for(GREEN_QUESTION.case_id)
    assert (review.reviewer, review.decided_department, review.decided_level, review.note) == (
        "reviewer-li", "教育文体", "yellow", note)
    page = reviewer.get(answer.headers["location"]).text
    assert "已保存修改。" in page and "已审核" in page
    assert "核实后&lt;b&gt;不&lt;/b&gt;紧急" in page  # the note is listed, escaped
    assert "已保存修改。" not in reviewer.get(answer.headers["location"]).text  # shown once


def test_once_changed_the_decided_level_leads_and_the_model_follows(reviewer: TestClient, store: Store) -> None:
    """After a change to yellow the case had still looked red: header, form default and confirm button."""
    case = SeedCase("WEB-RED-CHANGED", RED_WAGES.title, RED_WAGES.body, "red", RED_WAGES.department)
    store_case(store, case)
    answer = post_review(reviewer, case.case_id, store, action="change", level="yellow", note="核实后属一般欠薪")
    assert answer.status_code == 303
    page = reviewer.get(answer.headers["location"]).text
    head = page[page.index('id="head-level"'):page.index("</h1>")]
    assert "level-yellow" in head.split('id="model-level"')[0]  # the decided level, first and large
    assert 'id="model-level"' in head and "level-red" in head.split('id="model-level"')[1]  # the model's, after
    level_select = page[page.index('<select id="level"'):page.index("</select>", page.index('<select id="level"'))]
    assert re.search(r'<option value="yellow" selected>', level_select)  # the form starts from the decision
    confirm = page[page.index('id="confirm"'):page.index("</button>", page.index('id="confirm"'))]
    assert "改回模型结果" in confirm  # confirming now means going back to the model's 红, and says so


def test_confirm_stores_the_models_department_and_level(reviewer: TestClient, store: Store) -> None:
    answer = post_review(reviewer, YELLOW_NOISE.case_id, store, action="confirm")
    assert answer.status_code == 303
    (review,) = store.reviews_for(YELLOW_NOISE.case_id)
    latest = store.latest_prediction(YELLOW_NOISE.case_id)
    assert latest is not None
    assert (review.decided_department, review.decided_level) == (latest.department, latest.risk_level)
    assert YELLOW_NOISE.case_id not in reviewer.get("/review").text  # no longer pending


def test_a_review_of_a_superseded_prediction_is_refused(reviewer: TestClient, store: Store) -> None:
    stale = store.latest_prediction(RED_WAGES.case_id)
    assert stale is not None
    page = reviewer.get(f"/review/cases/{RED_WAGES.case_id}").text
    store_case(store, replace(RED_WAGES, body=RED_WAGES.body + "今天又有人受伤。"))  # a changed text
    answer = reviewer.post(
        f"/review/cases/{RED_WAGES.case_id}/reviews",
        data={"csrf_token": csrf_of(page), "prediction_id": str(stale.id), "action": "confirm"},
        follow_redirects=False,
    )
    assert answer.status_code == 422 and "新的预测" in answer.text
    assert store.reviews_for(RED_WAGES.case_id) == []


# -- queue and dashboard ---------------------------------------------------------------------------
def test_the_queue_filters_counts_and_links(reviewer: TestClient) -> None:
    html = reviewer.get("/review?level=red").text
    ids = re.findall(r'data-case-id="([^"]+)"', html)
    assert ids and ids[0] == RED_GAS.case_id
    assert all(i.startswith(("WEB-RED", "WEB-HOSTILE")) for i in ids)
    assert f'href="/review/cases/{RED_GAS.case_id}"' in html
    assert '<option value="red" selected>' in html
    counts = dict(re.findall(r'data-priority="(\w+)">(\d+)<', html))
    assert counts["red"] == str(len(ids)) and counts["yellow"] == "0"
    by_department = reviewer.get("/review", params={"department": "劳动和社会保障"}).text
    assert re.findall(r'data-case-id="([^"]+)"', by_department) == [RED_WAGES.case_id]
    future = reviewer.get("/review?since=2099-01-01").text
    assert "没有待审核的案件" in future


def test_the_dashboard_shows_charts_alerts_and_the_model(app_client: TestClient, reviewer: TestClient) -> None:
    html = reviewer.get("/dashboard").text
    assert 'id="chart-level"' in html and "<rect" in html and 'id="chart-department"' in html
    assert "grievance-triage" in html and "macro_f1" in html  # the serving model and its metrics
    assert "热点预警" in html
    assert "仅管理员可见" in html  # agreement figures are a report: admin only
    admin = new_client(app_client)
    assert log_in(admin, ADMIN_KEY).status_code == 303
    admin_html = admin.get("/dashboard").text
    assert "已审核" in admin_html and "部门一致" in admin_html
    assert "数据漂移与模型效果" in admin_html and "没有保存参照画像" in admin_html  # demo bundle: no reference


def test_the_chart_picks_its_period_and_stacks_counts() -> None:
    from datetime import date, timedelta

    from serving.web.charts import BOTTOM, CHART_HEIGHT, TOP, CaseRow, department_chart, level_chart

    start = date(2026, 1, 5)  # a Monday
    rows = [CaseRow(start + timedelta(days=d), level, "城乡建设") for d, level in
            [(0, "red"), (0, "green"), (1, "green"), (7, "yellow"), (20, "none")]]
    chart = level_chart(rows)
    assert chart.unit == "日" and not chart.empty
    assert [b.title for b in chart.bars[:2]] == ["01-05 红: 1", "01-05 绿: 1"]
    assert max(b.height for b in chart.bars) == pytest.approx((CHART_HEIGHT - BOTTOM - TOP) / 2, abs=0.1)
    assert [(name, n) for name, _, n in chart.legend] == [("红", 1), ("黄", 1), ("绿", 2), ("无风险模型", 1)]
    weekly = level_chart([*rows, CaseRow(start + timedelta(days=60), "red", "教育文体")])
    assert weekly.unit == "周" and weekly.bars[0].title == "01-05 红: 1" and weekly.bars[1].title == "01-05 绿: 2"
    assert department_chart([]).empty
