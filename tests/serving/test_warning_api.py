"""The warning API through the app's lifespan on SQLite and PostgreSQL: red cases, reviews and hot-issue
alerts issue warnings; departments acknowledge and resolve their own; the overdue sweep escalates when the
injected clock passes a deadline; admins see and requeue the webhook outbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.dependencies import services_of
from serving.settings import Settings
from serving.warning_desk import WarningDesk
from tests.keys import ADMIN, BUILDING, ENVIRONMENT, INTAKE, REVIEWER
from tests.serving.test_review_api import risk_bundle_dir  # noqa: F401  # the fixture
from tests.serving.test_triage_flow import GAS_REPORTS, gas_case

RED_CASE = {
    "case_id": "RED-1",
    "title": "南湖区居民楼外墙开裂随时可能倒塌",
    "body": "南湖区翠湖湾小区3栋承重墙出现大裂缝，楼体倾斜，随时可能倒塌，住户还在里面。我的电话13912345678。",
    "reporter_id": "P-red",
}
GREEN_CASE = {"case_id": "GREEN-1", "title": "请问新生儿落户需要准备哪些材料？", "body": "东港区，谢谢。"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings(risk_bundle_dir: Path, db_url: str) -> Settings:  # noqa: F811
    # Background rounds at start only (then an hour apart): the tests run the rounds themselves.
    return Settings(model_uri=str(risk_bundle_dir), database_url=db_url, warning_sweep_seconds=3600,
                    warning_issue_seconds=60)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def desk(client: TestClient) -> WarningDesk:
    """The app's desk, once its start-up round and sweep have run: on a loaded machine they could start late
    and issue the warnings of cases a test posted before the test's own round."""
    desk = services_of(client.app).warnings
    deadline = time.monotonic() + 30
    while (desk.rounds < 1 or desk.sweeps < 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert desk.rounds >= 1 and desk.sweeps >= 1, "the start-up warning rounds did not run"
    return desk


def triage(client: TestClient, case: dict[str, Any]) -> dict[str, Any]:
    """Triage a case, then run the issuer's round at once (the service runs one every half second)."""
    response = client.post("/v1/triage", json=case, headers=INTAKE)
    assert response.status_code == 200, response.text
    services_of(client.app).warnings.issue_new()
    return response.json()


def warnings(client: TestClient, headers: dict[str, str] = REVIEWER, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/warnings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def hand_to(client: TestClient, case_id: str, department: str) -> None:
    """A reviewer makes `department` responsible (a change of department updates the warning)."""
    current = client.get(f"/v1/cases/{case_id}", headers=REVIEWER).json()["predictions"][-1]["department"]["label"]
    if current != department:
        response = client.post(f"/v1/cases/{case_id}/reviews", headers=REVIEWER,
                               json={"action": "change", "department": department, "note": "房屋安全归城乡建设"})
        assert response.status_code == 201, response.text


def outbox_types(desk: WarningDesk) -> list[str]:
    return [e.event_type for e in reversed(desk.outbox.events(limit=200)[0])]


def test_a_red_case_issues_a_warning_its_department_acts_on(client: TestClient, desk: WarningDesk) -> None:
    answer = triage(client, RED_CASE)
    assert answer["risk"]["level"] == "red"
    listed = warnings(client)
    assert listed["total"] == 1
    (warning,) = listed["items"]
    year = datetime.now(UTC).astimezone(desk.policy.zone).year
    assert warning["number"] == f"预警〔{year}〕0001号" and warning["source"] == "case"
    assert (warning["case_id"], warning["level"], warning["district"]) == ("RED-1", "red", "南湖区")
    assert warning["department"] == answer["department"]["label"]
    issued = datetime.fromisoformat(warning["issued_at"])
    assert datetime.fromisoformat(warning["acknowledge_due"]) - issued == timedelta(hours=2)
    assert datetime.fromisoformat(warning["resolve_due"]) - issued == timedelta(hours=24)
    assert warning["reasons"] and "13912345678" not in str(warning["reasons"])
    assert outbox_types(desk) == ["warning.issued"]
    # Resubmitting the case issues nothing more.
    triage(client, RED_CASE)
    assert warnings(client)["total"] == 1

    # The model hands it to 城乡建设; a reviewer gives it to 环境保护 (the warning follows, never a new one).
    assert answer["department"]["label"] == "城乡建设"
    changed = client.post("/v1/cases/RED-1/reviews", headers=REVIEWER,
                          json={"action": "change", "department": "环境保护", "note": "经核实由环保部门牵头"})
    assert changed.status_code == 201, changed.text
    wid = warning["id"]
    assert client.get(f"/v1/warnings/{wid}", headers=REVIEWER).json()["department"] == "环境保护"
    assert warnings(client)["total"] == 1
    # The department it left neither sees nor acts on it any more.
    assert client.get(f"/v1/warnings/{wid}", headers=BUILDING).status_code == 404
    assert warnings(client, BUILDING)["total"] == 0
    refused = client.get("/v1/warnings", params={"department": "环境保护"}, headers=BUILDING)
    assert refused.status_code == 403 and "own department" in refused.json()["detail"]
    assert client.post(f"/v1/warnings/{wid}/acknowledge", headers=BUILDING).status_code == 404
    # Intake keys have no business here; reviewers do not 签收 or 办结.
    assert client.get("/v1/warnings", headers=INTAKE).status_code == 403
    assert client.post(f"/v1/warnings/{wid}/acknowledge", headers=REVIEWER).status_code == 403

    assert warnings(client, ENVIRONMENT)["total"] == 1
    shown = client.get(f"/v1/warnings/{wid}", headers=ENVIRONMENT).json()["case"]
    assert shown["title"] == RED_CASE["title"] and "承重墙" in shown["body"] and "13912345678" not in shown["body"]
    acked = client.post(f"/v1/warnings/{wid}/acknowledge", json={"note": "已签收"}, headers=ENVIRONMENT)
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    again = client.post(f"/v1/warnings/{wid}/acknowledge", headers=ENVIRONMENT)
    assert again.status_code == 409 and "only an issued warning" in again.json()["detail"]
    blank = client.post(f"/v1/warnings/{wid}/resolve", json={"note": "  "}, headers=ENVIRONMENT)
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"] == ["body", "note"]
    assert client.post(f"/v1/warnings/{wid}/resolve", json={}, headers=ENVIRONMENT).status_code == 422
    done = client.post(f"/v1/warnings/{wid}/resolve", json={"note": "已组织排危，住户已疏散"}, headers=ENVIRONMENT)
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    late = client.post(f"/v1/warnings/{wid}/withdraw", json={"note": "误报"}, headers=REVIEWER)
    assert late.status_code == 409 and "already resolved" in late.json()["detail"]
    events = done.json()["events"]
    assert [e["kind"] for e in events] == ["issued", "updated", "acknowledged", "resolved"]
    assert events[1]["detail"]["department"] == ["城乡建设", "环境保护"]
    assert events[2]["actor"] == "environment-bureau" and events[3]["note"] == "已组织排危，住户已疏散"
    assert outbox_types(desk) == ["warning.issued", "warning.updated", "warning.resolved"]
    assert warnings(client, status="resolved", district="南湖区")["total"] == 1
    assert warnings(client, status="issued")["total"] == 0


def test_resolving_a_withdrawn_warning_is_a_conflict(client: TestClient) -> None:
    triage(client, RED_CASE)
    hand_to(client, "RED-1", "城乡建设")
    wid = warnings(client)["items"][0]["id"]
    assert client.post(f"/v1/warnings/{wid}/withdraw", json={"note": "重复"}, headers=BUILDING).status_code == 403
    withdrawn = client.post(f"/v1/warnings/{wid}/withdraw", json={"note": "重复工单"}, headers=REVIEWER)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    refused = client.post(f"/v1/warnings/{wid}/resolve", json={"note": "办结"}, headers=BUILDING)
    assert refused.status_code == 409
    assert refused.json()["detail"].endswith("a withdrawn warning cannot be resolved (nothing to resolve)")
    assert client.get("/v1/warnings/999999", headers=REVIEWER).status_code == 404


def test_the_clock_past_a_deadline_raises_a_supervision_notice_once(client: TestClient, desk: WarningDesk) -> None:
    triage(client, RED_CASE)
    hand_to(client, "RED-1", "城乡建设")
    wid = warnings(client)["items"][0]["id"]
    assert desk.sweep() == [] and warnings(client, overdue=True)["total"] == 0
    clock = Clock(datetime.now(UTC) + timedelta(hours=2, minutes=1))
    desk.clock = clock
    escalated = desk.sweep()
    assert [w.id for w in escalated] == [wid] and escalated[0].escalation_level == 1
    assert desk.sweep() == []  # the same deadline is not escalated twice
    detail = client.get(f"/v1/warnings/{wid}", headers=BUILDING).json()
    assert detail["escalation_level"] == 1 and detail["overdue"] == ["acknowledge"]
    notice = detail["events"][-1]
    assert notice["kind"] == "supervised" and notice["actor"] == "system"
    assert notice["detail"]["notice"].startswith("督办〔") and notice["detail"]["deadline"] == "acknowledge"
    assert outbox_types(desk).count("warning.escalated") == 1
    assert [w["id"] for w in warnings(client, BUILDING, overdue=True)["items"]] == [wid]
    assert warnings(client, overdue=False)["total"] == 0


def test_a_reviewer_raising_a_case_to_red_issues_and_updates_one_warning(client: TestClient) -> None:
    assert triage(client, GREEN_CASE)["risk"]["level"] != "red"
    before = warnings(client)["total"]
    raised = client.post("/v1/cases/GREEN-1/reviews", headers=REVIEWER,
                         json={"action": "change", "level": "red", "note": "实为燃气泄漏"})
    assert raised.status_code == 201, raised.text
    listed = warnings(client, level="red")
    (warning,) = [w for w in listed["items"] if w["case_id"] == "GREEN-1"]
    assert warning["district"] == "东港区" and warnings(client)["total"] == before + 1
    lowered = client.post("/v1/cases/GREEN-1/reviews", headers=REVIEWER,
                          json={"action": "change", "level": "yellow", "note": "不紧急"})
    assert lowered.status_code == 201
    detail = client.get(f"/v1/warnings/{warning['id']}", headers=REVIEWER).json()
    assert detail["level"] == "yellow" and detail["status"] == "issued"  # updated, never deleted
    assert [e["kind"] for e in detail["events"]][-1] == "updated"
    issued = datetime.fromisoformat(detail["issued_at"])
    assert datetime.fromisoformat(detail["acknowledge_due"]) - issued == timedelta(days=1)


def test_a_hot_issue_alert_issues_its_own_warning_and_alert_raised(client: TestClient, desk: WarningDesk) -> None:
    for i in range(len(GAS_REPORTS)):
        triage(client, gas_case(i))
    alerts = client.get("/v1/alerts", headers=REVIEWER).json()["alerts"]
    assert alerts, "five gas reports from five people make a hot issue"
    from_alerts = [w for w in warnings(client, limit=200)["items"] if w["source"] == "alert"]
    assert {w["alert_id"] for w in from_alerts} >= {alerts[0]["id"]}
    assert all(w["reasons"][0]["kind"] == "hot_issue" for w in from_alerts)
    raised = [e for e in desk.outbox.events(event_type="alert.raised")[0]]
    assert len(raised) == len(from_alerts)
    assert {e.payload["alert"]["id"] for e in raised} == {w["alert_id"] for w in from_alerts}


def test_alert_warnings_read_in_one_round_go_to_their_raising_cases_departments(client: TestClient,
                                                                                 desk: WarningDesk) -> None:
    answers = {}
    for i in range(len(GAS_REPORTS)):  # no round in between: one round reads every alert raised
        response = client.post("/v1/triage", json=gas_case(i), headers=INTAKE)
        answers[response.json()["case_id"]] = response.json()["department"]["label"]
    alerts = client.get("/v1/alerts", headers=REVIEWER).json()["alerts"]
    assert alerts
    desk.issue_new()
    from_alerts = [w for w in warnings(client, limit=200)["items"] if w["source"] == "alert"]
    # the burst's yellow alert and its escalation to red (the one /v1/alerts lists now), from one round
    assert {w["alert_id"] for w in from_alerts} >= {a["id"] for a in alerts} and len(from_alerts) >= 2
    for warning in from_alerts:
        assert warning["case_id"] in answers and warning["department"] == answers[warning["case_id"]]


def test_a_prediction_the_issuer_missed_is_issued_by_the_sweep(client: TestClient, desk: WarningDesk) -> None:
    response = client.post("/v1/triage", json=RED_CASE, headers=INTAKE)
    assert response.json()["risk"]["level"] == "red"
    desk._after = desk.book.last_ids()  # as if the row had committed behind a newer one the issuer read
    assert desk.issue_new() == 0 and warnings(client)["total"] == 0
    assert desk.issue_missing() == 1 and desk.issue_missing() == 0
    assert warnings(client)["items"][0]["case_id"] == "RED-1"


def test_the_issuer_reads_each_new_row_once_and_pages_through_a_backlog(client: TestClient,
                                                                        desk: WarningDesk) -> None:
    for i in range(3):
        client.post("/v1/triage", json={**RED_CASE, "case_id": f"RED-{i}"}, headers=INTAKE)
    assert desk.issue_new(limit=2) == 2  # a full page: the cursor stops at the last row read
    assert desk.issue_new(limit=2) == 1
    assert desk.issue_new() == 0
    assert sorted(w["case_id"] for w in warnings(client)["items"]) == ["RED-0", "RED-1", "RED-2"]


def test_admins_see_the_outbox_and_requeue_dead_events(client: TestClient, desk: WarningDesk) -> None:
    triage(client, RED_CASE)
    (claimed,) = desk.outbox.claim()
    desk.outbox.failed(claimed, "ops: HTTP 500", [], max_attempts=1, base=1, cap=1)
    assert client.get("/v1/admin/outbox", headers=REVIEWER).status_code == 403
    dead = client.get("/v1/admin/outbox", params={"state": "dead"}, headers=ADMIN).json()
    assert dead["total"] == 1 and dead["counts"]["dead"] == 1 and dead["subscribers"] == []
    item = dead["items"][0]
    assert item["event_type"] == "warning.issued" and item["last_error"] == "ops: HTTP 500"
    assert "title" not in str(item["payload"]) and "燃气味很重" not in str(item["payload"])
    requeued = client.post(f"/v1/admin/outbox/{item['event_id']}/requeue", headers=ADMIN)
    assert requeued.status_code == 200 and requeued.json()["state"] == "pending"
    assert requeued.json()["attempts"] == 0
    again = client.post(f"/v1/admin/outbox/{item['event_id']}/requeue", headers=ADMIN)
    assert again.status_code == 409 and "only a dead event" in again.json()["detail"]
    assert client.post("/v1/admin/outbox/no-such-event/requeue", headers=ADMIN).status_code == 404


def test_a_review_and_the_warning_change_it_causes_commit_together(
    client: TestClient, desk: WarningDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    triage(client, RED_CASE)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the warning tables are broken")

    monkeypatch.setattr(desk.book, "apply_review", broken)
    with pytest.raises(RuntimeError):
        client.post("/v1/cases/RED-1/reviews", headers=REVIEWER,
                    json={"action": "change", "department": "环境保护", "note": "由环保部门牵头"})
    monkeypatch.undo()
    assert client.get("/v1/cases/RED-1", headers=REVIEWER).json()["reviews"] == []  # no review without its warning


def test_a_review_on_the_reviewer_page_moves_the_warning_too(client: TestClient) -> None:
    from tests.serving.test_web_pages import log_in, post_review

    triage(client, RED_CASE)
    page = TestClient(client.app)
    assert log_in(page).status_code == 303
    store = services_of(client.app).store
    answer = post_review(page, "RED-1", store, action="change", department="环境保护", level="red", note="由环保牵头")
    assert answer.status_code == 303, answer.text
    (warning,) = warnings(client)["items"]
    assert warning["department"] == "环境保护"
    # Bulk confirmation of a new prediction with the model's department moves it back.
    rescored = client.post("/v1/triage?rescore=true", json=RED_CASE, headers=INTAKE).json()
    confirmed = client.post("/v1/reviews/confirm", json={"prediction_ids": [rescored["prediction_id"]]},
                            headers=REVIEWER)
    assert confirmed.status_code == 200 and len(confirmed.json()["confirmed"]) == 1
    assert warnings(client)["items"][0]["department"] == rescored["department"]["label"] == "城乡建设"


def test_a_round_issues_a_backlog_a_few_warnings_per_transaction(
    client: TestClient, desk: WarningDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long round must not hold the store's write lock (SQLite: every triage write waits) for all of it."""
    import serving.warning_desk as warning_desk

    monkeypatch.setattr(warning_desk, "ISSUE_CHUNK", 2)
    for i in range(5):
        client.post("/v1/triage", json={**RED_CASE, "case_id": f"RED-{i}"}, headers=INTAKE)
    sizes: list[int] = []
    issue_many = desk.book.issue_many

    def counted(items: Any, **kwargs: Any) -> Any:
        sizes.append(len(items))
        return issue_many(items, **kwargs)

    monkeypatch.setattr(desk.book, "issue_many", counted)
    assert desk.issue_new() == 5
    assert sizes == [2, 2, 1]
    assert sorted(w["case_id"] for w in warnings(client)["items"]) == [f"RED-{i}" for i in range(5)]
    assert desk.issue_new() == 0


def test_a_replicas_round_skips_what_another_replica_already_issued(
    client: TestClient, desk: WarningDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker runs the issuer: each must read only rows still without a warning, not redo the others'."""
    other = WarningDesk(desk.store, desk.policy, desk.gazetteer)  # a second worker's desk, open since the start
    for i in range(3):
        client.post("/v1/triage", json={**RED_CASE, "case_id": f"RED-{i}"}, headers=INTAKE)
    assert desk.issue_new() == 3
    handed: list[int] = []
    issue_many = other.book.issue_many
    monkeypatch.setattr(other.book, "issue_many",
                        lambda items, **kw: handed.append(len(items)) or issue_many(items, **kw))
    assert other.issue_new() == 0 and handed == []
    client.post("/v1/triage", json={**RED_CASE, "case_id": "RED-9"}, headers=INTAKE)
    assert other.issue_new() == 1 and handed == [1]
    assert desk.issue_new() == 0
    assert sorted(w["case_id"] for w in warnings(client)["items"]) == ["RED-0", "RED-1", "RED-2", "RED-9"]


def test_replicas_take_turns_so_each_new_warning_is_drafted_once(
    client: TestClient, desk: WarningDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers started together ran their rounds at the same moments and each drafted every new warning (one
    draft thrown away); on PostgreSQL a round now waits for no one and skips while another replica's runs."""
    other = WarningDesk(desk.store, desk.policy, desk.gazetteer)  # a second worker's desk, open since the start
    drafted: list[str] = []
    for each in (desk, other):
        draft = each.prediction_draft
        monkeypatch.setattr(each, "prediction_draft",
                            lambda p, *a, draft=draft: drafted.append(p.case_id) or draft(p, *a))
    for i in range(3):
        client.post("/v1/triage", json={**RED_CASE, "case_id": f"RED-{i}"}, headers=INTAKE)
    with desk.book.taking_turns() as mine:  # as while this replica's round runs
        assert mine
        if desk.store.dialect == "postgresql":
            assert other.issue_new() == 0 and drafted == []  # skipped: nothing read, nothing drafted
            assert other.rounds == 0
    assert other.issue_new() + desk.issue_new() == 3
    # Rounds of both replicas at once, again and again: still one draft per warning.
    for k in range(3, 9):
        client.post("/v1/triage", json={**RED_CASE, "case_id": f"RED-{k}"}, headers=INTAKE)
    start = threading.Barrier(2)
    issued: list[int] = []

    def round_of(each: WarningDesk) -> None:
        start.wait()
        issued.append(each.issue_new())

    threads = [threading.Thread(target=round_of, args=(each,)) for each in (desk, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while desk.issue_new() or other.issue_new():  # a skipped round's rows: the next round takes them
        pass
    assert sum(issued) <= 6
    if desk.store.dialect == "postgresql":  # SQLite: one process, one desk; two desks here may draft alike
        assert sorted(drafted) == sorted(f"RED-{k}" for k in range(9))
    assert sorted(w["case_id"] for w in warnings(client, limit=50)["items"]) == sorted(f"RED-{k}" for k in range(9))
