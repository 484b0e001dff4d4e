"""The review queue's tools (issue 14, item 9): search by id or words, claims, confirming several cases
at once, and exporting the filtered queue; through the API and through the reviewer page."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from serving.app import create_app
from serving.dependencies import services_of
from serving.settings import Settings
from store import Store
from tests.browser.seed import GREEN_QUESTION, RED_GAS, RED_WAGES, YELLOW_NOISE, SeedCase, store_case, store_seeds
from tests.keys import API_KEYS, REVIEWER, REVIEWER_KEY

OTHER_KEY = "test-reviewer-two-key-0123456789abcdef"
OTHER = {"X-API-Key": OTHER_KEY}
FORMULA = SeedCase("WEB-FORMULA-1", "=HYPERLINK(\"http://x\")路灯不亮", "路灯坏了，联系电话13812345678。", "green",
                   "城乡建设")
PERCENT = SeedCase("WEB-PERCENT-1", "物业费上涨50%不合理", "物业费一次上涨了百分之五十。", "green", "城乡建设")


@pytest.fixture
def client(demo_bundle_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    keys = SecretStr(f"{API_KEYS},reviewer-wang:reviewer:{OTHER_KEY}")
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'q.db'}", api_keys=keys)
    with TestClient(create_app(settings)) as c:
        store_seeds(services_of(c.app).store)
        store_case(services_of(c.app).store, FORMULA)
        store_case(services_of(c.app).store, PERCENT)
        yield c


def queue_ids(client: TestClient, headers: dict[str, str] = REVIEWER, **params: str) -> list[str]:
    answer = client.get("/v1/review-queue", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    return [item["case_id"] for item in answer.json()["items"]]


def test_search_finds_a_case_by_its_id_or_by_words_of_its_text(client: TestClient) -> None:
    assert queue_ids(client, q=RED_WAGES.case_id) == [RED_WAGES.case_id]
    assert queue_ids(client, q="燃气味") == [RED_GAS.case_id]
    assert queue_ids(client, q="工人 市政府") == [RED_WAGES.case_id]  # every word must occur
    assert queue_ids(client, q="工人 燃气") == []
    assert queue_ids(client, q="50%") == [PERCENT.case_id]  # % is a character, not a wildcard
    assert queue_ids(client, q="%") == [PERCENT.case_id]
    counts = client.get("/v1/review-queue", headers=REVIEWER, params={"q": "材料"}).json()["counts"]
    assert counts["total"] == 1


def test_a_phone_number_cannot_be_searched_since_reviewers_see_it_masked(client: TestClient) -> None:
    answer = client.get("/v1/review-queue", headers=REVIEWER, params={"q": "13812345678"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "q"]


def test_a_claimed_case_shows_who_holds_it_and_another_reviewer_cannot_take_it(client: TestClient) -> None:
    taken = client.post(f"/v1/cases/{RED_GAS.case_id}/claim", headers=REVIEWER)
    assert taken.status_code == 200 and taken.json()["reviewer"] == "reviewer-li"
    refused = client.post(f"/v1/cases/{RED_GAS.case_id}/claim", headers=OTHER)
    assert refused.status_code == 409 and "reviewer-li" in refused.json()["detail"]
    items = {i["case_id"]: i for i in client.get("/v1/review-queue", headers=OTHER).json()["items"]}
    assert items[RED_GAS.case_id]["claimed_by"] == "reviewer-li"
    assert items[RED_WAGES.case_id]["claimed_by"] is None
    assert client.delete(f"/v1/cases/{RED_GAS.case_id}/claim", headers=OTHER).json()["released"] is False
    assert client.delete(f"/v1/cases/{RED_GAS.case_id}/claim", headers=REVIEWER).json()["released"] is True
    assert client.post(f"/v1/cases/{RED_GAS.case_id}/claim", headers=OTHER).status_code == 200
    assert client.post("/v1/cases/NO-SUCH-CASE/claim", headers=OTHER).status_code == 404


def test_several_cases_are_confirmed_at_once_and_the_others_skipped_with_why(client: TestClient) -> None:
    store: Store = services_of(client.app).store
    ids = {s.case_id: store.latest_prediction(s.case_id).id for s in (RED_GAS, RED_WAGES, YELLOW_NOISE, GREEN_QUESTION)}
    client.post(f"/v1/cases/{RED_WAGES.case_id}/claim", headers=OTHER)
    client.post(f"/v1/cases/{GREEN_QUESTION.case_id}/reviews", headers=REVIEWER, json={"action": "confirm"})
    answer = client.post("/v1/reviews/confirm", headers=REVIEWER, json={"prediction_ids": list(ids.values())})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(r["case_id"] for r in body["confirmed"]) == sorted([RED_GAS.case_id, YELLOW_NOISE.case_id])
    assert all(r["reviewer"] == "reviewer-li" for r in body["confirmed"])
    confirmed = {r["case_id"]: r for r in body["confirmed"]}
    assert confirmed[RED_GAS.case_id]["decided_level"] == "red"  # the model's level, as a confirm stores it
    skipped = {s["prediction_id"]: s for s in body["skipped"]}
    assert skipped[ids[RED_WAGES.case_id]]["reason"] == "claimed_by_another_reviewer"
    assert skipped[ids[RED_WAGES.case_id]]["claimed_by"] == "reviewer-wang"
    assert skipped[ids[GREEN_QUESTION.case_id]]["reason"] == "not_pending"
    assert set(queue_ids(client)) == {RED_WAGES.case_id, FORMULA.case_id, PERCENT.case_id}
    assert client.post("/v1/reviews/confirm", headers=REVIEWER, json={"prediction_ids": []}).status_code == 422


# -- the page ---------------------------------------------------------------------------------------
def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


@pytest.fixture
def page(client: TestClient) -> TestClient:
    browser = TestClient(client.app)
    token = csrf_of(browser.get("/review/login").text)
    assert browser.post("/review/login", data={"csrf_token": token, "api_key": REVIEWER_KEY, "next": "/review"},
                        follow_redirects=False).status_code == 303
    return browser


def test_the_page_searches_confirms_selected_cases_and_shows_claims(client: TestClient, page: TestClient) -> None:
    html = page.get("/review", params={"q": "燃气味"}).text
    assert 'value="燃气味"' in html and RED_GAS.case_id in html and RED_WAGES.case_id not in html
    assert "不能按电话号码" in page.get("/review", params={"q": "13812345678"}).text
    client.post(f"/v1/cases/{RED_WAGES.case_id}/claim", headers=OTHER)
    html = page.get("/review").text
    assert "reviewer-wang 处理中" in html
    store: Store = services_of(client.app).store
    gas, wages = store.latest_prediction(RED_GAS.case_id), store.latest_prediction(RED_WAGES.case_id)
    assert re.search(rf'value="{wages.id}"[^>]*disabled', html)  # another reviewer's claim: not selectable
    done = page.post("/review/confirm", data={"csrf_token": csrf_of(html), "back": "/review?level=red",
                                              "prediction_id": [str(gas.id), str(wages.id)]}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/review?level=red"
    flash = page.get("/review?level=red").text
    assert "已批量确认 1 件" in flash and f"{RED_WAGES.case_id}（reviewer-wang 已认领）" in flash
    assert [r.reviewer for r in store.reviews_for(RED_GAS.case_id)] == ["reviewer-li"]
    forged = page.post("/review/confirm", data={"csrf_token": "x", "prediction_id": str(wages.id)})
    assert forged.status_code == 403 and store.reviews_for(RED_WAGES.case_id) == []


def test_the_case_page_claims_and_releases(client: TestClient, page: TestClient) -> None:
    html = page.get(f"/review/cases/{YELLOW_NOISE.case_id}").text
    assert 'id="claim"' in html
    page.post(f"/review/cases/{YELLOW_NOISE.case_id}/claim", data={"csrf_token": csrf_of(html), "action": "claim"})
    html = page.get(f"/review/cases/{YELLOW_NOISE.case_id}").text
    assert "你已认领" in html
    assert client.post(f"/v1/cases/{YELLOW_NOISE.case_id}/claim", headers=OTHER).status_code == 409
    page.post(f"/review/cases/{YELLOW_NOISE.case_id}/claim", data={"csrf_token": csrf_of(html), "action": "release"})
    assert client.post(f"/v1/cases/{YELLOW_NOISE.case_id}/claim", headers=OTHER).status_code == 200


def test_the_filtered_queue_exports_as_a_safe_spreadsheet(page: TestClient) -> None:
    html = page.get("/review", params={"level": "green"}).text
    assert 'href="/review/export.csv?level=green"' in html
    answer = page.get("/review/export.csv", params={"level": "green"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    text = answer.text
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {r["案件编号"] for r in rows} == {GREEN_QUESTION.case_id, FORMULA.case_id, PERCENT.case_id}
    formula = next(r for r in rows if r["案件编号"] == FORMULA.case_id)
    assert formula["标题"].startswith("'=")  # a spreadsheet shows it as text, never runs it
    assert "13812345678" not in text  # masked as on the page
    assert page.get("/review/export.csv", params={"level": "red"}).text.count("\r\n") == 3  # header + 2 reds
