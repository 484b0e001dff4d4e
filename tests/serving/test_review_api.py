"""The review API through the app's lifespan on SQLite and PostgreSQL: cases triaged by the demo model,
then read, queued and reviewed by reviewer keys, and reported on to admins."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.bundle import TriageBundle
from models.risk import RiskModel
from serving.app import create_app
from serving.settings import Settings
from store.review_queries import iso_week
from tests.keys import ADMIN, INTAKE, REVIEWER
from tests.serving.test_triage_flow import GAS_REPORTS, gas_case

OTHER_CASES = [
    ("SCHOOL", "请问孩子上小学报名需要准备哪些材料？", ""),
    ("WAGES", "公司拖欠60多名工人半年工资",
     "我们在高新区宏达建筑公司工地干活，老板拖欠60多名工人半年工资，明天大家准备去市政府门口讨说法。"),
    ("PERMIT", "开小餐馆需要办环评手续吗？",
     "你好，我准备在西岭区学府路租个60平米的门面开面馆，只做早餐和午餐。想问一下需要做环评吗？"),
    ("HOA", "请问小区业主委员会如何成立？",
     "我们小区交房五年了一直没有业委会，很多事情没法跟物业谈。请问成立业委会要走什么流程？"),
]
RANK = {"red": 0, "yellow": 1, "review": 2, "other": 3}


@pytest.fixture(scope="module")
def risk_bundle_dir(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The demo router with a risk model fitted on the same training split, so cases get levels."""
    train, _ = demo_split
    proba = demo_bundle.predict_proba(train[["title", "body"]])
    risk = RiskModel().fit(train, router_proba=proba, router_classes=demo_bundle.classes, seed=7)
    directory = tmp_path_factory.mktemp("risk-bundle")
    dataclasses.replace(demo_bundle, risk=risk).save(directory)
    return directory


@pytest.fixture
def settings(risk_bundle_dir: Path, db_url: str) -> Settings:
    return Settings(model_uri=str(risk_bundle_dir), database_url=db_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def triage(client: TestClient, case: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/triage", json=case, headers=INTAKE)
    assert response.status_code == 200, response.text
    return response.json()


def other_case(i: int, **extra: Any) -> dict[str, Any]:
    case_id, title, body = OTHER_CASES[i]
    return {"case_id": case_id, "title": title, "body": body, "reporter_id": f"P-{i}", **extra}


@pytest.fixture
def triaged(client: TestClient) -> dict[str, dict[str, Any]]:
    """Five gas reports from five people (one hot issue with an alert) and four unrelated cases."""
    answers = [triage(client, gas_case(i, channel="12345热线")) for i in range(len(GAS_REPORTS))]
    answers += [triage(client, other_case(i)) for i in range(len(OTHER_CASES))]
    return {a["case_id"]: a for a in answers}


def queue(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/review-queue", params=params, headers=REVIEWER)
    assert response.status_code == 200, response.text
    return response.json()


def review(client: TestClient, case_id: str, headers: dict[str, str] = REVIEWER, **body: Any) -> Any:
    return client.post(f"/v1/cases/{case_id}/reviews", json=body, headers=headers)


def errors_at(response: Any) -> dict[tuple[str | int, ...], str]:
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "invalid request"
    return {tuple(err["loc"]): err["msg"] for err in payload["detail"]}


def keys_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_in(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_in(v)}
    return set()


def expected_priority(answer: dict[str, Any]) -> str:
    level = (answer.get("risk") or {}).get("level")
    if level in ("red", "yellow"):
        return level
    return "review" if answer["department"]["needs_review"] else "other"


# -- roles ------------------------------------------------------------------------------------------
def test_review_routes_need_a_key_and_the_right_role(client: TestClient, triaged: dict[str, Any]) -> None:
    reads = ["/v1/review-queue", "/v1/cases/GAS-0"]
    for path in [*reads, "/v1/reports/agreement"]:
        assert client.get(path).status_code == 401
        assert client.get(path, headers=INTAKE).status_code == 403
        assert client.get(path, headers=ADMIN).status_code == 200
    for path in reads:
        assert client.get(path, headers=REVIEWER).status_code == 200
    denied = client.get("/v1/reports/agreement", headers=REVIEWER)
    assert denied.status_code == 403 and "reviewer role may not" in denied.json()["detail"]
    assert review(client, "GAS-0", headers={}, action="confirm").status_code == 401
    assert review(client, "GAS-0", headers=INTAKE, action="confirm").status_code == 403
    assert client.get("/v1/cases/GAS-0", headers=REVIEWER).json()["reviews"] == []  # nothing stored


# -- the queue --------------------------------------------------------------------------------------
def test_queue_is_red_yellow_review_other_oldest_first(client: TestClient, triaged: dict[str, Any]) -> None:
    listed = queue(client)
    items = listed["items"]
    assert {i["case_id"] for i in items} == set(triaged)
    for item in items:
        answer = triaged[item["case_id"]]
        assert item["priority"] == expected_priority(answer)
        assert item["prediction_id"] == answer["prediction_id"]
        assert item["department"] == answer["department"]["label"]
    keys = [(RANK[i["priority"]], i["received_at"]) for i in items]
    assert keys == sorted(keys)
    assert items[0]["priority"] == "red"  # gas leaks are red on the demo model
    counts = listed["counts"]
    assert counts["total"] == len(triaged)
    for priority in RANK:
        assert counts[priority] == sum(i["priority"] == priority for i in items)
    assert (listed["limit"], listed["offset"]) == (50, 0)
    page = queue(client, limit=2, offset=1)
    assert [i["case_id"] for i in page["items"]] == [i["case_id"] for i in items[1:3]]
    assert page["counts"] == counts  # counts cover every page
    bodies = {f"GAS-{i}": body for i, (_, body) in enumerate(GAS_REPORTS)} | {c: b for c, _, b in OTHER_CASES}
    assert all(i["body_preview"] == bodies[i["case_id"]][:120] for i in items)


def test_queue_filters(client: TestClient, triaged: dict[str, Any]) -> None:
    everything = queue(client)["items"]
    reds = queue(client, level="red")
    assert [i["case_id"] for i in reds["items"]] == [i["case_id"] for i in everything if i["risk_level"] == "red"]
    assert reds["counts"]["yellow"] == 0 and reds["counts"]["red"] == len(reds["items"]) > 0
    department = everything[-1]["department"]
    routed = queue(client, department=department)["items"]
    assert routed and [i["case_id"] for i in routed] == [
        i["case_id"] for i in everything if i["department"] == department
    ]
    today = datetime.now(UTC).date()
    assert len(queue(client, since=today.isoformat())["items"]) == len(triaged)
    assert len(queue(client, until=today.isoformat())["items"]) == len(triaged)  # a day is inclusive
    assert queue(client, since=(today + timedelta(days=1)).isoformat())["items"] == []
    assert queue(client, until=(today - timedelta(days=1)).isoformat())["items"] == []
    middle = everything[3]["received_at"]  # a moment: since is inclusive, until exclusive
    ordered = sorted(i["received_at"] for i in everything)
    assert len(queue(client, since=middle)["items"]) == sum(t >= middle for t in ordered)
    assert len(queue(client, until=middle)["items"]) == sum(t < middle for t in ordered)


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ("query", "limit")),
        ({"limit": 201}, ("query", "limit")),
        ({"offset": -1}, ("query", "offset")),
        ({"level": "orange"}, ("query", "level")),
        ({"since": "yesterday"}, ("query", "since")),
        ({"since": "2026-11-28", "until": "2026-11-27"}, ("query", "until")),
    ],
)
def test_bad_queue_queries_are_422_naming_the_parameter(
    client: TestClient, params: dict[str, Any], loc: tuple[str, ...]
) -> None:
    assert loc in errors_at(client.get("/v1/review-queue", params=params, headers=REVIEWER))


def test_a_reviewed_case_leaves_the_queue_and_a_changed_text_brings_it_back(
    client: TestClient, triaged: dict[str, Any]
) -> None:
    before = queue(client)["counts"]["total"]
    confirmed = review(client, "SCHOOL", action="confirm")
    assert confirmed.status_code == 201, confirmed.text
    assert "SCHOOL" not in {i["case_id"] for i in queue(client)["items"]}
    assert queue(client)["counts"]["total"] == before - 1

    changed = triage(client, other_case(0, body="孩子明年九月上小学，户口在外地，能在这里报名吗？"))
    assert changed["prediction_id"] != triaged["SCHOOL"]["prediction_id"]
    back = [i for i in queue(client)["items"] if i["case_id"] == "SCHOOL"]
    assert [i["prediction_id"] for i in back] == [changed["prediction_id"]]


# -- reviews ----------------------------------------------------------------------------------------
def test_confirm_stores_the_models_decision_under_the_keys_name(client: TestClient, triaged: dict[str, Any]) -> None:
    answer = triaged["GAS-0"]
    response = review(client, "GAS-0", action="confirm", note="核实属实")
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["reviewer"] == "reviewer-li"
    assert stored["case_id"] == "GAS-0" and stored["prediction_id"] == answer["prediction_id"]
    assert stored["decided_department"] == answer["department"]["label"]
    assert stored["decided_level"] == answer["risk"]["level"]
    assert stored["note"] == "核实属实"
    assert datetime.fromisoformat(stored["created_at"]) <= datetime.now(UTC)


def test_a_change_and_a_second_review_are_appended(client: TestClient, triaged: dict[str, Any]) -> None:
    answer = triaged["PERMIT"]
    other_department = next(
        label for label in ("城乡建设", "环境保护") if label != answer["department"]["label"]
    )
    first = review(client, "PERMIT", action="change", department=other_department, note="  油烟归城管  ")
    assert first.status_code == 201, first.text
    assert first.json()["decided_department"] == other_department
    assert first.json()["decided_level"] == answer["risk"]["level"]  # unchanged fields keep the model's value
    assert first.json()["note"] == "油烟归城管"
    second = review(client, "PERMIT", headers=ADMIN, action="change", level="red", note="有安全隐患",
                    prediction_id=answer["prediction_id"])
    assert second.status_code == 201, second.text
    assert second.json()["reviewer"] == "ops"
    assert second.json()["decided_department"] == answer["department"]["label"]
    reviews = client.get("/v1/cases/PERMIT", headers=REVIEWER).json()["reviews"]
    assert [r["id"] for r in reviews] == [first.json()["id"], second.json()["id"]]
    assert [r["reviewer"] for r in reviews] == ["reviewer-li", "ops"]


def test_invalid_reviews_are_422_naming_the_field(client: TestClient, triaged: dict[str, Any]) -> None:
    answer = triaged["GAS-0"]
    model_department, model_level = answer["department"]["label"], answer["risk"]["level"]

    no_note = errors_at(review(client, "GAS-0", action="change", level="green"))
    assert set(no_note) == {("body", "note")} and "note" in no_note[("body", "note")]
    blank_note = errors_at(review(client, "GAS-0", action="change", level="green", note="   "))
    assert ("body", "note") in blank_note
    nothing = errors_at(review(client, "GAS-0", action="change", note="看看"))
    assert {("body", "department"), ("body", "level")} <= set(nothing)
    same = errors_at(review(client, "GAS-0", action="change", department=model_department, level=model_level,
                            note="同上"))
    assert model_department in same[("body", "department")]
    unknown = errors_at(review(client, "GAS-0", action="change", department="外星事务局", note="试试"))
    assert "外星事务局" in unknown[("body", "department")]
    confirm_other = errors_at(review(client, "GAS-0", action="confirm", level="green"))
    assert "change" in confirm_other[("body", "level")]
    assert ("body", "note") in errors_at(review(client, "GAS-0", action="change", level="green", note="长" * 2001))
    assert ("body", "action") in errors_at(review(client, "GAS-0", action="approve"))
    assert ("body", "action") in errors_at(review(client, "GAS-0"))
    assert ("body", "level") in errors_at(review(client, "GAS-0", action="change", level="orange", note="x"))
    # The reviewer comes from the key, never from the body.
    assert ("body", "reviewer") in errors_at(review(client, "GAS-0", action="confirm", reviewer="someone-else"))
    assert client.get("/v1/cases/GAS-0", headers=REVIEWER).json()["reviews"] == []


def test_unknown_cases_and_foreign_predictions_are_404(client: TestClient, triaged: dict[str, Any]) -> None:
    missing = review(client, "NO-SUCH-CASE", action="confirm")
    assert missing.status_code == 404 and "NO-SUCH-CASE" in missing.json()["detail"]
    assert review(client, "NO-SUCH-CASE", action="confirm", prediction_id=1).status_code == 404
    foreign = review(client, "GAS-0", action="confirm", prediction_id=triaged["WAGES"]["prediction_id"])
    assert foreign.status_code == 404 and "not a prediction of case 'GAS-0'" in foreign.json()["detail"]
    assert review(client, "GAS-0", action="confirm", prediction_id=999_999).status_code == 404
    detail = client.get("/v1/cases/NO-SUCH-CASE", headers=REVIEWER)
    assert detail.status_code == 404 and "NO-SUCH-CASE" in detail.json()["detail"]


def test_without_a_model_departments_seen_in_predictions_are_accepted(
    settings: Settings, tmp_path: Path, triaged: dict[str, Any]
) -> None:
    no_model = settings.model_copy(update={"model_uri": str(tmp_path / "no-such-model")})
    seen = triaged["HOA"]["department"]["label"]
    other = next(a["department"]["label"] for a in triaged.values() if a["department"]["label"] != seen)
    with TestClient(create_app(no_model)) as client:
        assert client.get("/readyz").status_code == 503
        ok = review(client, "HOA", action="change", department=other, note="归口不对")
        assert ok.status_code == 201, ok.text
        unknown = errors_at(review(client, "HOA", action="change", department="外星事务局", note="试试"))
        assert ("body", "department") in unknown


# -- case detail ------------------------------------------------------------------------------------
def test_case_detail_has_text_every_version_prediction_and_review(client: TestClient, triaged: dict[str, Any]) -> None:
    model_level = triaged["GAS-2"]["risk"]["level"]
    decided = "green" if model_level != "green" else "red"
    assert review(client, "GAS-2", action="change", level=decided, note="已有人处理").status_code == 201
    changed = triage(client, gas_case(2, body="兰溪苑小区5栋燃气味道还在，物业来看过但没有修好。"))
    response = client.get("/v1/cases/GAS-2", headers=REVIEWER)
    assert response.status_code == 200
    detail = response.json()
    assert detail["case_id"] == "GAS-2"
    assert detail["title"] == GAS_REPORTS[2][0]
    assert detail["body"] == "兰溪苑小区5栋燃气味道还在，物业来看过但没有修好。"
    assert detail["channel"] is None  # the changed text came without a channel
    assert [v["body"] for v in detail["versions"]] == [GAS_REPORTS[2][1], detail["body"]]
    assert detail["versions"][0]["channel"] == "12345热线"
    assert datetime.fromisoformat(detail["created_at"]) == datetime.fromisoformat(gas_case(2)["created_at"])

    first, second = detail["predictions"]
    assert (first["id"], second["id"]) == (triaged["GAS-2"]["prediction_id"], changed["prediction_id"])
    assert second["supersedes_id"] == first["id"]
    assert second["case_version_id"] == detail["versions"][1]["id"]
    assert first["department"] == triaged["GAS-2"]["department"]
    assert first["risk"] == triaged["GAS-2"]["risk"]
    assert first["hot_issue"] == triaged["GAS-2"]["hot_issue"]
    assert {"model", "cue"} <= {r["kind"] for r in first["risk"]["reasons"]}
    assert set(first["risk"]["probabilities"]) == {"red", "yellow", "green"}
    assert len(first["department"]["top"]) == 3
    assert first["model"]["version"] == triaged["GAS-2"]["model"]["version"]
    assert detail["latest_prediction_id"] == second["id"] and detail["pending"] is True
    assert detail["hot_issue_id"] == second["hot_issue_id"]  # the burst named by the latest prediction

    (stored_review,) = detail["reviews"]
    assert (stored_review["prediction_id"], stored_review["decided_level"]) == (first["id"], decided)
    assert stored_review["reviewer"] == "reviewer-li" and stored_review["note"] == "已有人处理"


def test_case_detail_names_its_hot_issue_alert_and_the_other_cases(
    client: TestClient, triaged: dict[str, Any]
) -> None:
    detail = client.get("/v1/cases/GAS-3", headers=REVIEWER).json()
    burst = triaged["GAS-4"]["hot_issue"]
    assert detail["hot_issue_id"] == triaged["GAS-3"]["hot_issue"]["id"] == burst["id"]
    alert = detail["alert"]
    assert alert["burst_id"] == burst["id"]
    assert alert["level"] == burst["level"]  # the burst's current alert, not its first
    assert alert["id"] == client.get("/v1/alerts", headers=REVIEWER).json()["alerts"][0]["id"]
    assert alert["reporters"] >= 3 and alert["keywords"]
    assert detail["burst_case_ids"] == ["GAS-0", "GAS-1", "GAS-2", "GAS-4"]


def test_a_case_outside_any_burst_has_no_alert(client: TestClient, triaged: dict[str, Any]) -> None:
    detail = client.get("/v1/cases/SCHOOL", headers=REVIEWER).json()
    assert detail["alert"] is None and detail["hot_issue_id"] is None and detail["burst_case_ids"] == []


def test_reporter_ids_never_leave_the_review_api(client: TestClient, triaged: dict[str, Any]) -> None:
    review(client, "GAS-1", action="confirm")
    answers = [
        client.get(f"/v1/cases/{case_id}", headers=REVIEWER).json() for case_id in triaged
    ] + [queue(client), client.get("/v1/reports/agreement", headers=ADMIN).json()]
    for answer in answers:
        assert not any("reporter_id" in key for key in keys_in(answer))
        text = str(answer)
        for i in range(len(GAS_REPORTS)):
            assert f"R-{i}" not in text
        for i in range(len(OTHER_CASES)):
            assert f"P-{i}" not in text


# -- agreement --------------------------------------------------------------------------------------
def test_agreement_report_counts_latest_reviews_and_missed_reds(client: TestClient, triaged: dict[str, Any]) -> None:
    empty = client.get("/v1/reports/agreement", headers=ADMIN).json()
    assert empty["overall"] == {
        "reviewed": 0, "agreed_department": 0, "agreed_level": 0, "department_agreement": None,
        "level_agreement": None,
    }
    not_red = [cid for cid, a in triaged.items() if a["risk"]["level"] != "red"]
    red = [cid for cid, a in triaged.items() if a["risk"]["level"] == "red"]
    assert not_red and red
    missed, kept = not_red[0], red[0]
    assert review(client, kept, action="confirm").status_code == 201
    assert review(client, missed, action="confirm").status_code == 201
    assert review(client, missed, action="change", level="red", note="其实很危险").status_code == 201  # latest

    report = client.get("/v1/reports/agreement", headers=ADMIN).json()
    assert report["overall"] == {
        "reviewed": 2, "agreed_department": 2, "agreed_level": 1, "department_agreement": 1.0,
        "level_agreement": 0.5,
    }
    assert [(m["case_id"], m["predicted_level"], m["reviewer"]) for m in report["missed_red"]] == [
        (missed, triaged[missed]["risk"]["level"], "reviewer-li")
    ]
    assert report["level_confusion"]["red"] == {"red": 1}
    assert report["level_confusion"][triaged[missed]["risk"]["level"]] == {"red": 1}
    assert report["by_week"] == [
        {"week": iso_week(datetime.now(UTC)), "reviewed": 2, "department_agreement": 1.0, "level_agreement": 0.5}
    ]
    assert sum(row["reviewed"] for row in report["by_department"]) == 2
    assert {row["level"]: row["rate"] for row in report["by_level"]}["red"] == 1.0

    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    later = client.get("/v1/reports/agreement", params={"since": tomorrow}, headers=ADMIN).json()
    assert later["overall"]["reviewed"] == 0 and later["since"].startswith(tomorrow)
    assert ("query", "since") in errors_at(
        client.get("/v1/reports/agreement", params={"since": "last week"}, headers=ADMIN)
    )


# -- logs and docs ----------------------------------------------------------------------------------
def test_logs_name_reviews_cases_and_reviewers_only(
    client: TestClient, triaged: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    note = "住户张先生电话13800001111说燃气味很重"
    stored = review(client, "GAS-3", action="change", level="yellow", note=note).json()
    client.get("/v1/cases/GAS-3", headers=REVIEWER)
    queue(client)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"review id={stored['id']}" in logged and "GAS-3" in logged and "reviewer-li" in logged
    for secret in (note, "13800001111", "张先生", GAS_REPORTS[3][0], GAS_REPORTS[3][1], "R-3"):
        assert secret not in logged


def test_openapi_documents_the_review_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        ("/v1/cases/{case_id}/reviews", "post"): {"201", "401", "403", "404", "422"},
        ("/v1/cases/{case_id}", "get"): {"200", "401", "403", "404", "422"},
        ("/v1/review-queue", "get"): {"200", "401", "403", "422"},
        ("/v1/reports/agreement", "get"): {"200", "401", "403", "422"},
    }
    for (path, method), codes in expected.items():
        operation = paths[path][method]
        assert operation["tags"] == ["review"]
        assert codes <= set(operation["responses"]), (path, set(operation["responses"]))


def test_every_view_of_a_case_masks_phone_id_card_and_email(client: TestClient) -> None:
    """The queue (API and page), the case (API and page) show the same masked text."""
    body = "联系电话13812345678，身份证110101199003074578，邮箱 zhang.san@example.com。楼道燃气味很重，两天了"
    title = "燃气泄漏 13912345678 li@example.cn"
    assert client.post("/v1/triage", json={"case_id": "PII-1", "title": title, "body": body},
                       headers=INTAKE).status_code == 200
    secrets = ("13812345678", "13912345678", "110101199003074578", "zhang.san@example.com", "li@example.cn")
    views = [
        client.get("/v1/review-queue", params={"limit": 200}, headers=REVIEWER).text,
        client.get("/v1/cases/PII-1", headers=REVIEWER).text,
        client.get("/review", params={"limit": 200}, headers=REVIEWER).text,
        client.get("/review/cases/PII-1", headers=REVIEWER).text,
    ]
    for view in views:
        assert "PII-1" in view
        for secret in secrets:
            assert secret not in view
    assert "<邮箱>" in views[1] or "\\u003c邮箱\\u003e" in views[1] or "&lt;邮箱&gt;" in views[3]
