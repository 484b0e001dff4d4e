"""Faults (issue 5, item 2c): a worker SIGKILLed mid-request leaves a consistent store.

The app runs under uvicorn in a subprocess, as in production; threads keep triaging (new cases,
re-scores and changed texts, so supersedes chains grow under concurrency) and the process is killed
while requests are in flight. A restart on the same database must start and answer, the database must
be intact (every prediction's case row exists and every case row has its prediction, every chain is
one line of earlier predictions of the same case, SQLite's integrity check is ok), and every answer
that got a 200 must be in the store: a 200 means stored.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.keys import INTAKE
from tests.serving.uvicorn_servers import Server

THREADS = 6
KILL_AFTER = 40  # successful answers before the kill
CUT_OFF = -1  # status recorded for a request the kill cut off

TEXTS = [
    ("东港区恒发鞋厂拖欠工人四个月工资", "我们二十多名工人被欠薪，请劳动保障监察大队帮忙追讨。"),
    ("青林路夜间施工噪音扰民", "青林路地铁站工地每天夜里十二点后还在打桩，附近居民无法入睡。"),
    ("孩子上小学报名需要准备哪些材料", "请问今年秋季一年级新生报名需要户口本和房产证明吗？"),
]


def keep_triaging(url: str, worker: int, stop: threading.Event, answers: list[tuple[str, int, Any]]) -> None:
    """New cases, re-scores of one case and changed texts of another, until the server dies."""
    counter = itertools.count()
    with httpx.Client(base_url=url, headers=INTAKE, timeout=60) as client:
        while not stop.is_set():
            n = next(counter)
            title, body = TEXTS[n % len(TEXTS)]
            kind = n % 3
            if kind == 0:
                payload, params = {"case_id": f"NEW-{worker}-{n}", "title": title, "body": body}, {}
            elif kind == 1:
                payload, params = {"case_id": f"RESCORE-{worker}", "title": title, "body": "同一案件再次评分"}, {
                    "rescore": "true"}
            else:
                payload, params = {"case_id": f"CHANGED-{worker % 2}", "title": title, "body": f"第{n}次补充说明"}, {}
            try:
                response = client.post("/v1/triage", json=payload, params=params)
            except httpx.HTTPError:
                answers.append((payload["case_id"], CUT_OFF, None))  # in flight when the server died
                return
            is_json = response.headers.get("content-type", "").startswith("application/json")
            answers.append((payload["case_id"], response.status_code,
                            response.json().get("prediction_id") if is_json else response.text[:200]))


def check_integrity(db_url: str) -> None:
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as db:
            if db.dialect.name == "sqlite":
                assert db.execute(text("PRAGMA integrity_check")).scalar() == "ok"
                assert db.execute(text("PRAGMA foreign_key_check")).all() == []
            orphans = db.execute(text(
                "SELECT p.id FROM predictions p LEFT JOIN cases c ON c.id = p.case_row_id "
                "WHERE c.id IS NULL OR c.case_id <> p.case_id")).all()
            assert orphans == [], "predictions without their case row"
            unanswered = db.execute(text(
                "SELECT c.case_id FROM cases c LEFT JOIN predictions p ON p.case_row_id = c.id "
                "WHERE p.id IS NULL")).all()
            assert unanswered == [], "cases stored without their prediction (issue 13, item 12)"
            broken = db.execute(text(
                "SELECT p.id FROM predictions p LEFT JOIN predictions q ON q.id = p.supersedes_id "
                "WHERE p.supersedes_id IS NOT NULL AND (q.id IS NULL OR q.case_id <> p.case_id OR q.id >= p.id)")).all()
            assert broken == [], "a prediction supersedes a later one, another case's, or a missing one"
            heads = db.execute(text(
                "SELECT case_id, SUM(CASE WHEN supersedes_id IS NULL THEN 1 ELSE 0 END), COUNT(*), "
                "COUNT(DISTINCT supersedes_id) FROM predictions GROUP BY case_id")).all()
            for case_id, first, total, linked in heads:
                assert first == 1 and linked == total - 1, f"case {case_id}: its predictions are not one chain"
    finally:
        engine.dispose()


def stored_predictions(db_url: str) -> dict[int, str]:
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as db:
            return {row[0]: row[1] for row in db.execute(text("SELECT id, case_id FROM predictions"))}
    finally:
        engine.dispose()


def test_a_worker_killed_mid_request_leaves_a_consistent_store(
    server_env: dict[str, str], db_url: str, servers: list[Server], tmp_path: Path
) -> None:
    first = Server(server_env, tmp_path / "server.log")
    servers.append(first)
    first.wait_ready()

    answers: list[tuple[str, int, Any]] = []
    stop = threading.Event()
    threads = [threading.Thread(target=keep_triaging, args=(first.url, i, stop, answers)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while sum(status == 200 for _, status, _ in answers) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()  # mid-stream: six requests are in flight
    stop.set()
    for thread in threads:
        thread.join(90)
        assert not thread.is_alive()
    ok = [(case_id, prediction_id) for case_id, status, prediction_id in answers if status == 200]
    assert len(ok) >= KILL_AFTER, f"only {len(ok)} answers before the deadline"
    assert {status for _, status, _ in answers} == {200, CUT_OFF}, answers  # 200s, then requests cut off
    assert any(status == CUT_OFF for _, status, _ in answers)

    second = Server(server_env, tmp_path / "server.log")
    servers.append(second)
    second.wait_ready()
    check_integrity(db_url)
    stored = stored_predictions(db_url)
    for case_id, prediction_id in ok:  # the database was up: every 200 carried its audit-trail id
        assert prediction_id is not None and stored.get(prediction_id) == case_id

    after = httpx.post(f"{second.url}/v1/triage", headers=INTAKE, timeout=60,
                       json={"case_id": "AFTER-RESTART", "title": TEXTS[0][0], "body": TEXTS[0][1]})
    assert after.status_code == 200 and after.json()["prediction_id"] is not None
    check_integrity(db_url)
    assert not (tmp_path / "spool").exists() or not list((tmp_path / "spool").glob("spool-*.jsonl"))
