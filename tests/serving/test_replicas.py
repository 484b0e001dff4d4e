"""Two API replicas on one database share one hot-issue state (issue 6, item 4).

Two uvicorn processes, as behind a load balancer, triage the demo bursts concurrently; consecutive
cases of one burst go to different replicas, so each replica alone would see only half of every burst.
The store must end with exactly the alerts one detector raises over the same cases in the order the
replicas observed them (the feed): none lost, none twice, the same ids; and each answer's hot issue is
the burst that one detector put the case in.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from models.hotspot_settings import load_hotspot_config
from models.hotspots import CaseEvent, HotspotDetector
from tests.keys import INTAKE
from tests.serving.uvicorn_servers import Server

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "training" / "demo_data" / "grievances.csv"
BURSTS = 4  # the demo's largest bursts
THREADS = 4


def demo_stream() -> list[dict[str, Any]]:
    """The cases of the demo's largest bursts plus the other cases of their weeks, in time order."""
    demo = pd.read_csv(DEMO, dtype=str).fillna("")
    demo["created_at"] = pd.to_datetime(demo["created_at"])
    sizes = demo[demo["burst"] != ""].groupby("burst").size().sort_values(ascending=False)
    chosen = demo[demo["burst"].isin(sizes.index[:BURSTS])]
    start, end = chosen["created_at"].min(), chosen["created_at"].max()
    window = demo[(demo["created_at"] >= start) & (demo["created_at"] <= end)].sort_values("created_at")
    return [
        {"case_id": row.case_id, "title": row.title, "body": row.body, "reporter_id": row.reporter_id or None,
         "created_at": row.created_at.isoformat(), "burst": row.burst}
        for row in window.itertuples()
    ]


def send_all(urls: list[str], cases: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Cases in order, from THREADS threads, case k to replica k mod 2; case_id -> (replica url, answer)."""
    queue = iter(enumerate(cases))
    lock = threading.Lock()
    answers: dict[str, tuple[str, dict[str, Any]]] = {}
    errors: list[str] = []

    def work() -> None:
        clients = {url: httpx.Client(base_url=url, headers=INTAKE, timeout=60) for url in urls}
        try:
            while True:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                k, case = item
                url = urls[k % len(urls)]
                payload = {key: value for key, value in case.items() if key != "burst"}
                response = clients[url].post("/v1/triage", json=payload)
                with lock:
                    if response.status_code != 200:
                        errors.append(f"{case['case_id']}: {response.status_code} {response.text[:200]}")
                    else:
                        answers[case["case_id"]] = (url, response.json())
        finally:
            for client in clients.values():
                client.close()

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
        assert not thread.is_alive()
    assert errors == []
    return answers


def stored(db_url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(feed rows in order as detector events, alerts as (alert_id, burst_id, level))."""
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as db:
            feed = db.execute(text(
                "SELECT c.case_id, f.observed_at, c.title, c.body, c.reporter_id, f.votes "
                "FROM hotspot_feed f JOIN cases c ON c.id = f.case_row_id ORDER BY f.seq")).all()
            alerts = db.execute(text("SELECT alert_id, burst_id, level FROM hotspot_alerts")).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in feed], [tuple(row) for row in alerts]


def _naive_utc(value: Any) -> datetime:
    moment = pd.Timestamp(value)
    return (moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo else moment).to_pydatetime()


@pytest.mark.slow
def test_two_replicas_raise_each_alert_once_as_one_detector_would(
    server_env: dict[str, str], db_url: str, servers: list[Server], tmp_path: Path
) -> None:
    replicas = []
    for name in ("a", "b"):
        env = {**server_env, "TRIAGE_SPOOL_DIR": str(tmp_path / f"spool-{name}"), "TRIAGE_HOTSPOT_SHARING": "feed"}
        server = Server(env, tmp_path / f"{name}.log")
        servers.append(server)
        replicas.append(server)
    for server in replicas:
        server.wait_ready()
    cases = demo_stream()
    answers = send_all([s.url for s in replicas], cases)
    assert len(answers) == len(cases)

    # The hard case was exercised: every chosen burst reached both replicas.
    by_burst: dict[str, set[str]] = {}
    for case in cases:
        if case["burst"]:
            by_burst.setdefault(case["burst"], set()).add(answers[case["case_id"]][0])
    assert len(by_burst) >= BURSTS and all(len(urls) == 2 for urls in by_burst.values())

    feed, alerts = stored(db_url)
    assert sorted(row[0] for row in feed) == sorted(c["case_id"] for c in cases)  # each case in the feed once

    # One detector over the feed's order: the alerts both replicas stored, exactly, and the answers' bursts.
    detector = HotspotDetector(load_hotspot_config(None))
    expected_alerts, expected_burst = [], {}
    for case_id, observed_at, title, body, reporter, votes in feed:
        assignment = detector.observe(CaseEvent(case_id, _naive_utc(observed_at), title, body, reporter, votes))
        expected_burst[case_id] = assignment.burst_id if assignment.cases >= 2 else None
        if assignment.alert is not None:
            expected_alerts.append((assignment.alert.alert_id, assignment.alert.burst_id, assignment.alert.level))
    assert len(expected_alerts) >= BURSTS, "the demo bursts should raise alerts"
    assert sorted(alerts) == sorted(expected_alerts)
    per_level = Counter((burst_id, level) for _, burst_id, level in alerts)
    assert max(per_level.values()) == 1, "a burst alerted twice at one level"
    for case_id, (_, answer) in answers.items():
        hot = answer.get("hot_issue")
        assert (hot["id"] if hot else None) == expected_burst[case_id], case_id

    # Both replicas wrote some of the alerts (each stores those its own cases raise).
    served = {case_id: url for case_id, (url, _) in answers.items()}
    raisers = {served[detector_alert_case] for detector_alert_case in _alert_cases(detector)}
    assert raisers == {s.url for s in replicas}


def _alert_cases(detector: HotspotDetector) -> list[str]:
    return [alert.last_case_id for alert in detector.alerts]


def test_the_feed_order_is_one_line_with_many_writers(db_url: str, tmp_path: Path) -> None:
    """Many threads appending at once: every case once in the feed, seqs strictly increasing, and the
    detector state of a replica that followed along equals one rebuilt from the feed."""
    from serving.hotspot_service import HotspotService
    from store import Store, upgrade_database

    upgrade_database(db_url)
    config = load_hotspot_config(None)
    cases = demo_stream()
    with Store.from_url(db_url) as store:
        services = [HotspotService.restore(store, config) for _ in range(3)]
        counter = itertools.count()
        lock = threading.Lock()

        def work(service: HotspotService) -> None:
            while True:
                with lock:
                    k = next(counter)
                if k >= len(cases):
                    return
                case = cases[k]
                service.observe(case["case_id"], datetime.fromisoformat(case["created_at"]), case["title"],
                                case["body"], case["reporter_id"])

        threads = [threading.Thread(target=work, args=(services[i % 3],)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        feed = store.hotspot_feed_after(0)
        assert [e.case_id for e in feed] != [] and len(feed) == len(cases)
        assert len({e.case_id for e in feed}) == len(cases)
        assert all(a.seq < b.seq for a, b in itertools.pairwise(feed))
        for service in services:
            service.sync()  # catch up on the cases the other two appended
        states = [s.detector.snapshot() for s in services]
        assert states[0] == states[1] == states[2]
        rebuilt = HotspotService.restore(store, config)
        assert rebuilt.feed_seq == services[-1].feed_seq
        assert rebuilt.detector.snapshot() == states[0]


def test_a_store_from_before_the_feed_is_replayed_once_whatever_order_its_case_rows_have(
    db_url: str, tmp_path: Path
) -> None:
    """Cases stored before the feed existed are replayed from the cases table, then the feed. Replicas store
    a group's case rows before they take the feed lock, and a case stored during an outage keeps its row when
    it joins the feed later, so the feed's first entry need not hold its smallest case row: the cases replayed
    as "before the feed" must stop at the smallest, or a feed case is observed out of its feed order."""
    from serving.hotspot_service import HotspotService
    from store import CaseInput, Store, upgrade_database
    from tests.serving.test_store import a_prediction

    upgrade_database(db_url)
    config = load_hotspot_config(None)
    burst = [c for c in demo_stream() if c["burst"]]
    burst = [c for c in burst if c["burst"] == burst[0]["burst"]][:4]
    assert len(burst) == 4
    before_1, before_2, late, first = burst

    def stored(case: dict[str, Any]) -> None:
        store.record_case_and_prediction(
            CaseInput(case["case_id"], case["title"], case["body"], datetime.fromisoformat(case["created_at"]),
                      case["reporter_id"]), a_prediction())

    def observed(service: HotspotService, case: dict[str, Any]) -> None:
        service.observe(case["case_id"], datetime.fromisoformat(case["created_at"]), case["title"], case["body"],
                        case["reporter_id"])

    with Store.from_url(db_url) as store:
        stored(before_1)
        stored(before_2)  # both before the feed existed
        live = HotspotService.restore(store, config)
        stored(late)  # its case row now, its feed entry later (as for a case stored during an outage)
        observed(live, first)
        observed(live, late)
        rows = {e.case_id: e.seq for e in store.hotspot_feed_after(0)}
        assert list(rows) == [first["case_id"], late["case_id"]]
        rebuilt = HotspotService.restore(store, config)
        assert rebuilt.detector.snapshot() == live.detector.snapshot()
