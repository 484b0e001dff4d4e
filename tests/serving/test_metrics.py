"""GET /metrics (issue 17, item 1): Prometheus text, bounded labels, admin only or an open port, and
counters that equal the audit store's counts when several uvicorn workers answered."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from serving.app import create_app
from serving.metrics import forget_dead_workers, route_template
from serving.settings import Settings
from tests.keys import ADMIN, INTAKE, REVIEWER
from tests.serving.test_replicas import demo_stream
from tests.serving.uvicorn_servers import ROOT, START_TIMEOUT, free_port, wait_ready

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(exposition: str) -> Samples:
    """Every sample of a scrape, keyed by (name, sorted labels); parsing fails on anything malformed."""
    out: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(found: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all((k, labels[k]) in ls for k in labels))


def case(case_id: str) -> dict[str, Any]:
    return {"case_id": case_id, "title": "小区供暖三天不热", "body": "老人孩子受冻，请热力公司尽快维修"}


@pytest.fixture
def client(demo_bundle_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'm.db'}",
                        spool_dir=tmp_path / "spool")
    with TestClient(create_app(settings), headers=ADMIN) as c:
        yield c


def test_metrics_need_an_admin_key(client: TestClient) -> None:
    assert client.get("/metrics", headers={"X-API-Key": ""}).status_code == 401
    assert client.get("/metrics", headers=INTAKE).status_code == 403
    assert client.get("/metrics", headers=REVIEWER).status_code == 403
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")


def test_requests_are_labelled_by_route_template_and_cases_by_department_and_level(client: TestClient) -> None:
    before = samples(client.get("/metrics").text)
    answers = [client.post("/v1/triage", json=case(f"M-{i}"), headers=INTAKE).json() for i in range(3)]
    for i in range(3):
        assert client.get(f"/v1/cases/M-{i}").status_code == 200
    client.get("/no/such/path/12345")
    after = samples(client.get("/metrics").text)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("triage_http_requests_total", route="/v1/cases/{case_id:path}", status="200", method="GET") == 3
    assert delta("triage_http_requests_total", route="/v1/triage", status="200") == 3
    assert delta("triage_http_request_duration_seconds_count", route="/v1/triage", status="200") == 3
    assert delta("triage_http_requests_total", route="<unmatched>", status="404") == 1
    routes = {dict(ls).get("route") for (n, ls) in after if n == "triage_http_requests_total"}
    assert not any(r and ("M-" in r or "12345" in r) for r in routes), routes  # no raw path is a label
    department = answers[0]["department"]["label"]
    level = answers[0]["risk"]["level"] if answers[0]["risk"] else "none"
    assert delta("triage_cases_total", department=department, level=level) == 3
    reviewed = sum(a["department"]["needs_review"] for a in answers)
    assert delta("triage_cases_needs_review_total", department=department) == reviewed
    # The same case again is answered from the store: not a new prediction, not counted.
    client.post("/v1/triage", json=case("M-0"), headers=INTAKE)
    again = samples(client.get("/metrics").text)
    assert total(again, "triage_cases_total") == total(after, "triage_cases_total")
    assert total(again, "triage_database_up") == 1
    assert total(again, "triage_spool_records") == 0
    info = [dict(ls) for (n, ls), v in again.items() if n == "triage_model_info" and v == 1]
    assert info and all({"name", "version"} <= set(labels) for labels in info)


def test_metrics_off_counts_nothing_and_answers_404(demo_bundle_dir: Path, tmp_path: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'off.db'}",
                        spool_dir=tmp_path / "spool", metrics_enabled=False)
    with TestClient(create_app(settings), headers=ADMIN) as c:
        assert c.post("/v1/triage", json=case("OFF-1"), headers=INTAKE).status_code == 200
        answer = c.get("/metrics")
        assert answer.status_code == 404
        assert "TRIAGE_METRICS_ENABLED" in answer.json()["detail"]


def test_route_template_of_an_unmatched_request() -> None:
    assert route_template({"type": "http", "path": "/v1/cases/ABC"}) == "<unmatched>"


def test_a_dead_workers_live_gauges_are_forgotten_and_its_counters_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    for name in (f"gauge_livesum_{dead_pid}.db", f"gauge_livemin_{dead_pid}.db", f"counter_{dead_pid}.db",
                 f"gauge_livesum_{os.getpid()}.db"):
        (tmp_path / name).write_bytes(b"")
    assert forget_dead_workers(tmp_path) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead_pid}.db", f"gauge_livesum_{os.getpid()}.db"]
    )


def store_counts(db_url: str) -> tuple[Counter, Counter, Counter]:
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as db:
            cases = Counter({(d, lvl or "none"): n for d, lvl, n in db.execute(text(
                "SELECT department, risk_level, COUNT(*) FROM predictions GROUP BY department, risk_level"))})
            review = Counter({d: n for d, n in db.execute(text(
                "SELECT department, COUNT(*) FROM predictions WHERE needs_review GROUP BY department"))})
            alerts = Counter({lvl: n for lvl, n in db.execute(text(
                "SELECT level, COUNT(*) FROM hotspot_alerts GROUP BY level"))})
    finally:
        engine.dispose()
    return cases, review, alerts


def by_label(found: Samples, name: str, *keys: str) -> Counter:
    out: Counter = Counter()
    for (n, ls), v in found.items():
        if n == name and v:
            labels = dict(ls)
            out[tuple(labels[k] for k in keys) if len(keys) > 1 else labels[keys[0]]] += int(v)
    return out


@pytest.mark.slow
def test_two_workers_counters_equal_the_stores_counts(server_env: dict[str, str], db_url: str, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**server_env, "TRIAGE_HOTSPOT_SHARING": "feed", "TRIAGE_METRICS_PORT": str(metrics_port),
           "TRIAGE_METRICS_REFRESH_SECONDS": "0.2", "TMPDIR": str(scratch)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "command.cli", "serve", "--port", str(port), "--workers", "2"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        metrics_dir = _both_workers_up(scratch)
        cases = demo_stream()
        send_on_new_connections(url, cases)
        pids = {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) == 2, f"both workers should have answered: {sorted(pids)}"
        scraped = samples(httpx.get(f"{url}/metrics", headers=ADMIN, timeout=30).text)
        open_port = samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text)
    finally:
        process.terminate()
        process.wait(60)
    cases_stored, review_stored, alerts_stored = store_counts(db_url)
    assert sum(cases_stored.values()) == len(cases)
    for found in (scraped, open_port):
        assert by_label(found, "triage_cases_total", "department", "level") == cases_stored
        assert by_label(found, "triage_cases_needs_review_total", "department") == review_stored
        assert by_label(found, "triage_hot_issue_alerts_total", "level") == alerts_stored
        assert total(found, "triage_http_requests_total", route="/v1/triage", status="200") == len(cases)
        assert total(found, "triage_database_up") == 1
        # Every case went through exactly one committed feed transaction (group commit: often with others).
        assert total(found, "triage_hot_issue_feed_group_cases_sum") == len(cases)
        groups = total(found, "triage_hot_issue_feed_group_cases_count")
        assert 1 <= groups <= len(cases)
        assert total(found, "triage_hot_issue_feed_transaction_seconds_count") == groups
        # Each of them held the feed lock for part of its time (the rest: waiting for it, and the work before).
        assert total(found, "triage_hot_issue_feed_lock_held_seconds_count") == groups
        held = total(found, "triage_hot_issue_feed_lock_held_seconds_sum")
        assert 0 < held <= total(found, "triage_hot_issue_feed_transaction_seconds_sum")
    assert alerts_stored, "the demo bursts raise alerts"
    assert not metrics_dir.exists(), "the start's metrics directory is removed when the service stops"


def send_on_new_connections(url: str, cases: list[dict[str, Any]]) -> None:
    """Each case on a connection of its own, from 4 threads: a kept-alive connection stays with the worker
    that accepted it, and both workers must answer for the test to mean anything."""
    import threading

    todo = iter(cases)
    lock = threading.Lock()
    errors: list[str] = []

    def work() -> None:
        while True:
            with lock:
                case = next(todo, None)
            if case is None:
                return
            payload = {k: v for k, v in case.items() if k != "burst"}
            answer = httpx.post(f"{url}/v1/triage", json=payload, headers={**INTAKE, "Connection": "close"},
                                timeout=60)
            if answer.status_code != 200:
                with lock:
                    errors.append(f"{case['case_id']}: {answer.status_code} {answer.text[:200]}")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []


def _both_workers_up(scratch: Path) -> Path:
    """The start's metrics directory once both workers have opened their services (each writes its live
    database gauge then)."""
    import time

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for directory in scratch.glob("triage-metrics-*"):
            if len(list(directory.glob("gauge_livemin_*.db"))) == 2:
                return directory
        time.sleep(0.3)
    raise AssertionError(f"two workers did not start: {sorted(str(p) for p in scratch.rglob('*'))}")


def test_a_reload_moves_the_model_info_to_the_new_version(demo_bundle: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    models = tmp_path / "models"
    first, second = models / "one", models / "two"
    demo_bundle.save(first)
    replace(demo_bundle, metadata={**demo_bundle.metadata, "model_version": "test-2"}).save(second)
    settings = Settings(model_uri=str(first), database_url=f"sqlite:///{tmp_path / 'r.db'}",
                        spool_dir=tmp_path / "spool", reload_model_dir=models)
    with TestClient(create_app(settings), headers=ADMIN) as c:
        answer = c.post("/v1/admin/reload", json={"model_uri": str(second)})
        assert answer.status_code == 200, answer.text
        found = samples(c.get("/metrics").text)
    info = {dict(ls)["version"]: v for (n, ls), v in found.items() if n == "triage_model_info"}
    assert info["test-2"] == 1 and info["test"] == 0
