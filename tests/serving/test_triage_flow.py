"""The service end to end through its lifespan: audit trail, resubmissions, hot issues, alerts, restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.bundle import TriageBundle
from serving.app import create_app
from serving.dependencies import services_of
from serving.hotspot_service import HotspotService
from serving.settings import Settings
from store import Store
from tests.keys import ADMIN

# Five residents of one (made-up) community report the same gas smell in their own words.
GAS_REPORTS = [
    ("兰溪苑小区5栋燃气味很重", "兰溪苑小区5栋一楼楼道里燃气味很重，已经两天了，物业说不归他们管。"),
    ("兰溪苑5栋楼道天然气味道刺鼻", "我住兰溪苑小区5栋，这几天楼道里一直有天然气的味道，很担心会爆炸。"),
    ("兰溪苑小区5栋疑似燃气泄漏", "兰溪苑小区5栋单元门口闻到很重的燃气味，老人孩子都不敢下楼，请燃气公司来查。"),
    ("兰溪苑5栋燃气泄漏无人处理", "兰溪苑小区5栋燃气味道越来越大，打了物业电话没人来，请尽快派人检查燃气管道。"),
    ("兰溪苑小区5栋楼道燃气味", "兰溪苑小区5栋楼道燃气味非常明显，邻居们都闻到了，请相关部门赶紧处理。"),
]


def gas_case(i: int, **extra: Any) -> dict[str, Any]:
    title, body = GAS_REPORTS[i]
    return {"case_id": f"GAS-{i}", "title": title, "body": body, "reporter_id": f"R-{i}",
            "created_at": f"2026-09-0{3 + i // 2}T{8 + i:02d}:00:00+08:00", **extra}


@pytest.fixture
def database(db_url: str) -> str:
    """Each test runs on SQLite and on PostgreSQL (see tests/serving/conftest.py)."""
    return db_url


@pytest.fixture
def client(demo_bundle_dir: Path, database: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_uri=str(demo_bundle_dir), database_url=database)), headers=ADMIN) as c:
        yield c


def test_every_prediction_is_stored_and_named_by_model_version(client: TestClient, database: str) -> None:
    answer = client.post("/v1/triage", json=gas_case(0)).json()
    assert answer["prediction_id"] is not None
    store = Store.from_url(database)
    try:
        (stored,) = store.predictions_for("GAS-0")
        assert stored.id == answer["prediction_id"]
        assert stored.department == answer["department"]["label"]
        assert stored.model_version == answer["model"]["version"]
    finally:
        store.dispose()


def test_resubmitting_the_same_text_returns_the_stored_prediction(client: TestClient, database: str) -> None:
    first = client.post("/v1/triage", json=gas_case(0)).json()
    again = client.post("/v1/triage", json=gas_case(0)).json()
    assert again == first
    rescored = client.post("/v1/triage", params={"rescore": True}, json=gas_case(0)).json()
    assert rescored["prediction_id"] != first["prediction_id"]
    changed = client.post("/v1/triage", json=gas_case(0, body="燃气味已经没有了，谢谢物业及时处理。")).json()
    store = Store.from_url(database)
    try:
        history = store.predictions_for("GAS-0")
    finally:
        store.dispose()
    assert [p.id for p in history] == [first["prediction_id"], rescored["prediction_id"], changed["prediction_id"]]
    assert history[1].supersedes_id == history[0].id and history[2].supersedes_id == history[1].id


def test_a_resubmission_is_not_counted_twice_in_a_hot_issue(client: TestClient) -> None:
    for _ in range(3):
        client.post("/v1/triage", json=gas_case(0))
    second = client.post("/v1/triage", json=gas_case(1)).json()
    assert second["hot_issue"] is not None
    assert second["hot_issue"]["cases"] == 2
    assert second["hot_issue"]["reporters"] == 2


def test_reports_from_several_people_raise_an_alert_listed_with_its_members(client: TestClient) -> None:
    answers = [client.post("/v1/triage", json=gas_case(i)).json() for i in range(len(GAS_REPORTS))]
    assert answers[0]["hot_issue"] is None  # one case is not yet a hot issue
    burst_ids = {a["hot_issue"]["id"] for a in answers[1:]}
    assert len(burst_ids) == 1
    assert answers[-1]["hot_issue"]["cases"] == len(GAS_REPORTS)
    assert answers[-1]["hot_issue"]["level"] in ("yellow", "red")

    listed = client.get("/v1/alerts").json()["alerts"]
    assert [a["burst_id"] for a in listed] == [burst_ids.pop()]
    detail = client.get(f"/v1/alerts/{listed[0]['id']}").json()
    assert [m["case_id"] for m in detail["members"]] == [f"GAS-{i}" for i in range(len(GAS_REPORTS))]
    assert detail["trajectory"][-1]["cumulative"] == len(GAS_REPORTS)
    assert "兰溪苑" in (detail["place"] or "")
    assert detail["history"][0]["level"] == "yellow"
    level = listed[0]["level"]
    other = "yellow" if level == "red" else "red"
    assert client.get("/v1/alerts", params={"level": level}).json()["alerts"] == listed
    assert client.get("/v1/alerts", params={"level": other}).json()["alerts"] == []


def test_a_triage_answers_hot_issue_id_leads_to_its_alert(client: TestClient) -> None:
    """Issue 14, item 11: `hot_issue.id` is a burst id; it used to 404 on /v1/alerts/{id}."""
    answers = [client.post("/v1/triage", json=gas_case(i)).json() for i in range(2)]
    early = answers[-1]["hot_issue"]
    assert early["level"] is None  # two reports: a hot issue, no alert yet
    response = client.get(f"/v1/alerts/{early['id']}")
    assert response.status_code == 404 and "has not yet" in response.json()["detail"]
    answers += [client.post("/v1/triage", json=gas_case(i)).json() for i in range(2, len(GAS_REPORTS))]
    hot = answers[-1]["hot_issue"]
    assert hot["id"] == early["id"] and hot["level"] is not None
    followed = client.get(f"/v1/alerts/{hot['id']}")
    assert followed.status_code == 200
    assert (followed.json()["burst_id"], followed.json()["level"]) == (hot["id"], hot["level"])
    assert followed.json() == client.get(f"/v1/alerts/{hot['id']}:{hot['level']}").json()


def test_an_unknown_alert_is_404(client: TestClient) -> None:
    response = client.get("/v1/alerts/hot-nope:red")
    assert response.status_code == 404
    assert "hot-nope:red" in response.json()["detail"]


def test_hot_issue_state_survives_a_restart(demo_bundle_dir: Path, database: str) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=database)
    with TestClient(create_app(settings), headers=ADMIN) as first_run:
        for i in range(2):
            first_run.post("/v1/triage", json=gas_case(i))
    with TestClient(create_app(settings), headers=ADMIN) as second_run:
        third = second_run.post("/v1/triage", json=gas_case(2)).json()
    assert third["hot_issue"] is not None
    assert third["hot_issue"]["cases"] == 3
    assert third["hot_issue"]["reporters"] == 3


class ProcessKilled(RuntimeError):
    """Stands for the process dying while it answers a case (kill -9 cannot be timed in a test)."""


@pytest.mark.parametrize("sharing", ["feed", "local"])
def test_a_case_whose_answer_dies_half_way_is_neither_stored_nor_counted(
    demo_bundle_dir: Path, database: str, sharing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, item 12: the feed row used to commit before the prediction, so a process killed between
    the two left a case stored without its answer, counted in every replica's bursts for good."""
    import serving.triage_service as triage_service

    made = triage_service.PredictionInput

    def dies_on_gas_1(**fields: Any) -> Any:
        if "GAS-1" in triage_service_calls:
            raise ProcessKilled
        return made(**fields)

    observe = HotspotService.observe_many
    triage_service_calls: list[str] = []

    def observed(self: HotspotService, cases: Any) -> Any:
        triage_service_calls.extend(case.case_id for case in cases)
        return observe(self, cases)

    settings = Settings(model_uri=str(demo_bundle_dir), database_url=database, hotspot_sharing=sharing)
    with TestClient(create_app(settings), headers=ADMIN) as first_run:
        first_run.post("/v1/triage", json=gas_case(0))
        # The answer to GAS-1 dies once the detector has seen the case, before it is stored.
        monkeypatch.setattr(HotspotService, "observe_many", observed)
        monkeypatch.setattr(triage_service, "PredictionInput", dies_on_gas_1)
        with pytest.raises(ProcessKilled):
            first_run.post("/v1/triage", json=gas_case(1))
        monkeypatch.undo()
    store = Store.from_url(database)
    try:
        assert store.case_versions("GAS-1") == []
        assert store.predictions_for("GAS-1") == []
        assert [e.case_id for e in store.hotspot_feed_after(0)] == (["GAS-0"] if sharing == "feed" else [])
    finally:
        store.dispose()
    with TestClient(create_app(settings), headers=ADMIN) as second_run:  # the restarted process
        third = second_run.post("/v1/triage", json=gas_case(2)).json()
    assert third["hot_issue"] is not None
    assert (third["hot_issue"]["cases"], third["hot_issue"]["reporters"]) == (2, 2)


def test_on_the_feed_each_answered_case_has_its_feed_row_and_its_prediction(
    demo_bundle_dir: Path, database: str
) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=database, hotspot_sharing="feed")
    with TestClient(create_app(settings), headers=ADMIN) as client:
        answers = [client.post("/v1/triage", json=gas_case(i)).json() for i in range(4)]
    store = Store.from_url(database)
    try:
        assert [e.case_id for e in store.hotspot_feed_after(0)] == [f"GAS-{i}" for i in range(4)]
        for i, answer in enumerate(answers):
            (stored,) = store.predictions_for(f"GAS-{i}")
            assert stored.id == answer["prediction_id"]
            assert stored.hot_issue_id == (answer["hot_issue"] or {}).get("id")
            assert stored.risk_level == (answer["risk"] or {}).get("level")
    finally:
        store.dispose()
    assert answers[3]["hot_issue"]["cases"] == 4


def test_a_batch_on_the_feed_is_one_feed_transaction_and_answers_as_case_by_case_posts(
    demo_bundle_dir: Path, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's cases queue together for the feed (one transaction for up to MAX_GROUP cases, not one each),
    the feed's transaction finishes their risk in one pass of the risk model (not one per case, under the lock
    every replica waits for), and each answer is the one the same cases posted one at a time get."""
    transactions: list[int] = []
    real = Store.hotspot_intake

    def counted(self: Store, intakes: Any, **kwargs: Any) -> Any:
        transactions.append(len(intakes))
        return real(self, intakes, **kwargs)

    finished: list[int] = []
    real_finish = TriageBundle.finish

    def finish(self: TriageBundle, pending: Any, **kwargs: Any) -> Any:
        finished.append(len(pending.routes))
        return real_finish(self, pending, **kwargs)

    cases = [gas_case(i) for i in range(5)]
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=database, hotspot_sharing="feed")
    monkeypatch.setattr(Store, "hotspot_intake", counted)
    with TestClient(create_app(settings), headers=ADMIN) as client:
        monkeypatch.setattr(TriageBundle, "finish", finish)  # after the start-up's warm-up
        batch = client.post("/v1/triage/batch", json={"cases": cases})
        monkeypatch.setattr(TriageBundle, "finish", real_finish)
    assert batch.status_code == 200, batch.text
    assert transactions == [5]
    assert finished == [5]
    single_db = f"sqlite:///{tmp_path / 'one_by_one.db'}"
    with TestClient(create_app(settings.model_copy(update={"database_url": single_db})), headers=ADMIN) as client:
        singles = [client.post("/v1/triage", json=case).json() for case in cases]
    store = Store.from_url(database)
    try:
        for got, one in zip(batch.json()["results"], singles, strict=True):
            (stored,) = store.predictions_for(got["case_id"])
            assert got["prediction_id"] == stored.id
            assert stored.hot_issue_id == (got["hot_issue"] or {}).get("id")
            for field in ("department", "risk", "hot_issue"):
                assert got[field] == one[field], field
    finally:
        store.dispose()
    assert any(answer["hot_issue"] for answer in singles)  # the comparison covers a hot issue


@pytest.mark.parametrize("sharing", ["feed", "local"])
def test_a_resubmission_is_found_by_the_transaction_that_stores_cases(
    demo_bundle_dir: Path, database: str, sharing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, one store transaction per case: no lookup precedes scoring. The detector's transaction finds
    a resubmission under the case's lock, answers it with the stored prediction and neither observes nor
    appends it, so the case is never counted again (not even once it has left the detector's window, where
    the detector no longer knows it); a re-score is stored and counted as before."""
    lookups: list[str] = []
    real = Store.existing_prediction

    def looked_up(self: Store, case_id: str, title: str | None, body: str | None) -> Any:
        lookups.append(case_id)
        return real(self, case_id, title, body)

    monkeypatch.setattr(Store, "existing_prediction", looked_up)
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=database, hotspot_sharing=sharing)
    store = Store.from_url(database)
    try:
        with TestClient(create_app(settings), headers=ADMIN) as client:
            detector = services_of(client.app).hotspots
            assert detector is not None
            first = client.post("/v1/triage", json=gas_case(0)).json()
            # Dated now, three months after GAS-0: GAS-0 leaves the 30-day window.
            lamp = {"case_id": "LAMP", "title": "滨河路路灯不亮", "body": "滨河路一排路灯晚上都不亮。"}
            client.post("/v1/triage", json=lamp)
            fed, state = store.hotspot_feed_last_seq(), detector.detector.snapshot()
            again = client.post("/v1/triage", json=gas_case(0)).json()
            assert detector.detector.snapshot() == state
            batch = client.post("/v1/triage/batch", json={"cases": [gas_case(0), gas_case(1)]}).json()
            rescored = client.post("/v1/triage", params={"rescore": True}, json=gas_case(0)).json()
            if sharing == "feed":
                assert [e.case_id for e in store.hotspot_feed_after(fed)] == ["GAS-1", "GAS-0"]
        assert again == first
        assert batch["results"][0] == {key: value for key, value in first.items() if key != "model"}  # batch: on top
        assert rescored["prediction_id"] != first["prediction_id"]
        assert [p.id for p in store.predictions_for("GAS-0")] == [first["prediction_id"], rescored["prediction_id"]]
        assert lookups == []
    finally:
        store.dispose()


def test_in_local_mode_a_case_its_hot_issue_rows_and_its_answer_are_one_transaction(
    demo_bundle_dir: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: in local mode (the SQLite default) a case used to take a lookup, then a transaction per
    hot-issue member and alert, then one for its prediction: a process killed in between left a burst's rows
    without the answer. Now each request is one intake transaction and nothing else."""
    calls: list[str] = []

    def counted(name: str) -> Any:
        real = getattr(Store, name)

        def call(self: Store, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(self, *args, **kwargs)

        return call

    for name in ("existing_prediction", "record_case_and_prediction", "add_hotspot_member", "add_alert",
                 "hotspot_local_intake"):
        monkeypatch.setattr(Store, name, counted(name))
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=database, hotspot_sharing="local")
    with TestClient(create_app(settings), headers=ADMIN) as client:
        calls.clear()  # the start-up's own
        answers = [client.post("/v1/triage", json=gas_case(i)).json() for i in range(len(GAS_REPORTS))]
    assert calls == ["hotspot_local_intake"] * len(GAS_REPORTS)
    burst = answers[-1]["hot_issue"]
    assert burst is not None and burst["level"] is not None
    store = Store.from_url(database)
    try:
        assert [m.case_id for m in store.members_of(burst["id"])] == [f"GAS-{i}" for i in range(len(GAS_REPORTS))]
        assert burst["level"] in {alert.level for alert in store.alerts_for_burst(burst["id"])}
        for i, answer in enumerate(answers):
            (stored,) = store.predictions_for(f"GAS-{i}")
            assert stored.id == answer["prediction_id"] and stored.hot_issue_id == (answer["hot_issue"] or {}).get("id")
    finally:
        store.dispose()
