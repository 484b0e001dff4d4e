"""Case time is the client's claim, receive time the server's: far dates are refused or held back, never 500.

One case dated a year ahead used to switch hot-issue detection off for everyone (the detector's clock is
the newest case time it has seen, so every burst expired), and a year-9999 date made every page that shows
it answer 500, for good.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.hotspots import CaseEvent, HotspotDetector
from serving.app import create_app
from serving.settings import Settings
from serving.web.present import local_time
from store import CaseInput, PredictionInput, Store
from tests.keys import ADMIN
from tests.serving.test_triage_flow import GAS_REPORTS


@pytest.fixture
def client(demo_bundle_dir: Path, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_uri=str(demo_bundle_dir), database_url=db_url)), headers=ADMIN) as c:
        yield c


def recent_gas_case(i: int) -> dict[str, Any]:
    title, body = GAS_REPORTS[i]
    when = datetime.now(UTC) - timedelta(hours=2) + timedelta(minutes=10 * i)
    return {"case_id": f"GAS-{i}", "title": title, "body": body, "reporter_id": f"R-{i}",
            "created_at": when.isoformat()}


def test_a_case_dated_far_ahead_does_not_switch_off_hot_issue_detection(client: TestClient, db_url: str) -> None:
    ahead = {"case_id": "AHEAD-1", "title": "道路积水", "body": "下雨后路口积水很深，请处理。", "reporter_id": "R-X",
             "created_at": "2099-12-31T20:00:00Z"}
    assert client.post("/v1/triage", json=ahead).status_code == 200
    answers = [client.post("/v1/triage", json=recent_gas_case(i)).json() for i in range(len(GAS_REPORTS))]
    assert answers[-1]["hot_issue"] is not None
    assert answers[-1]["hot_issue"]["cases"] == len(GAS_REPORTS)
    assert client.get("/v1/alerts").json()["alerts"], "the burst of five people raised no alert"
    store = Store.from_url(db_url)
    try:
        (stored,) = store.case_versions("AHEAD-1")
    finally:
        store.dispose()
    assert stored.created_at == datetime(2099, 12, 31, 20, tzinfo=UTC)  # the claim is kept as given


@pytest.mark.parametrize(
    "created_at", ["9999-12-31T20:00:00Z", "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00"]
)
def test_case_times_outside_1970_to_2100_are_a_422_naming_the_field(client: TestClient, created_at: str) -> None:
    case = {"case_id": "FAR-1", "title": "路灯不亮", "body": "小区门口路灯坏了。", "created_at": created_at}
    answer = client.post("/v1/triage", json=case)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"][-1] == "created_at"
    assert "1970-01-01" in error["msg"] and "2100-01-01" in error["msg"]
    batch = client.post("/v1/triage/batch", json={"cases": [{**case, "created_at": "2026-01-01T00:00:00Z"}, case]})
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"][-3:] == ["cases", 1, "created_at"]


@pytest.mark.parametrize("path", ["/v1/review-queue", "/v1/reports/agreement"])
@pytest.mark.parametrize("name,value", [("until", "9999-12-31"), ("since", "0001-01-01T00:00:00+01:00"),
                                        ("until", "9999-12-31T23:59:59+00:00")])
def test_extreme_date_filters_are_a_422_naming_the_parameter(client: TestClient, path: str, name: str,
                                                              value: str) -> None:
    answer = client.get(path, params={name: value})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", name]


def test_the_queue_page_ignores_a_filter_day_it_cannot_represent(client: TestClient) -> None:
    login = client.get("/review/login")
    assert login.status_code == 200
    page = client.get("/review", params={"until": "9999-12-31", "since": "0001-01-01"}, headers=ADMIN)
    assert page.status_code in (200, 303)  # never a 500


def test_a_stored_year_9999_time_is_shown_not_a_500(demo_bundle_dir: Path, db_url: str) -> None:
    """A case stored before times were range-checked still renders on the dashboard and its own page."""
    store = Store.from_url(db_url)
    try:
        from store import upgrade_database

        upgrade_database(db_url)
        store.record_case_and_prediction(
            CaseInput("OLD-9999", "燃气泄漏", "楼道燃气味很重。", datetime(9999, 12, 31, 20, tzinfo=UTC)),
            PredictionInput("demo", "1", "城乡建设", 0.9, False, [{"label": "城乡建设", "probability": 0.9}], "red"),
        )
    finally:
        store.dispose()
    assert local_time(datetime(9999, 12, 31, 20, tzinfo=UTC)).startswith("9999-12-31 20:00")
    assert local_time(datetime(1, 1, 1, tzinfo=UTC))  # shown, whatever the platform prints for year 1
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=db_url)
    with TestClient(create_app(settings), headers=ADMIN) as c:
        for path in ("/dashboard", "/review/cases/OLD-9999", "/v1/cases/OLD-9999", "/review"):
            assert c.get(path).status_code == 200, path


def test_a_restored_detector_clock_ahead_of_now_is_brought_back() -> None:
    detector = HotspotDetector()
    detector.observe(CaseEvent("A", datetime(2099, 1, 1), "燃气泄漏", "楼道燃气味很重"))
    now = datetime(2026, 12, 6, 12)
    assert detector.rewind_clock(now)
    assert not detector.rewind_clock(now)
    restored = HotspotDetector.from_snapshot(detector.snapshot())
    assert not restored.rewind_clock(now)  # the snapshot holds the rewound clock
