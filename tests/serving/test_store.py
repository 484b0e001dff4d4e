"""The audit store, run against SQLite (a temporary file) and PostgreSQL (127.0.0.1:5432, database `test`).

Every test that takes `db_url` or `store` runs once per backend. On PostgreSQL each test gets its own
schema (`search_path` set through the connection's `options`), dropped afterwards, so tests are
isolated and the `test` database is left as it was. The PostgreSQL half is skipped, with the reason,
only when the server cannot be reached.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from models.hotspots import HotspotDetector
from serving.app import create_app
from serving.dependencies import NO_STORE, StoreDep
from serving.settings import Settings
from store import (
    CaseInput,
    PredictionInput,
    Store,
    current_revision,
    head_revision,
    jsonable,
    make_engine,
    text_hash,
    upgrade_database,
)
from store.migrate import downgrade_database
from store.tables import Base, HotspotAlert, Prediction
from tests.keys import ADMIN
from training.hotspots_cli import events_from_frame
from training.loading import load_cases

STORE_TABLES = {
    "cases", "predictions", "reviews", "hotspot_members", "hotspot_alerts", "hotspot_snapshots", "hotspot_feed",
    "web_session_revocations",
    "review_claims",
    "warnings", "warning_events", "outbox",
}

WAGES_TITLE = "临江县鑫隆电子厂拖欠六十多名工人三个月工资"
WAGES_BODY = "厂里从三月起没有发工资，老板联系不上，请劳动监察部门介入。"
GAS_BODY = WAGES_BODY + "另外厂区宿舍楼道里闻到燃气泄漏的味道。"
T0 = datetime(2026, 7, 15, 1, 30, tzinfo=UTC)


# -- fixtures (postgres_admin, postgres_url and db_url live in tests/serving/conftest.py) -----------
@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade_database(db_url)
    with Store.from_url(db_url) as opened:
        yield opened


def a_case(case_id: str = "YC1", body: str = WAGES_BODY, **fields: Any) -> CaseInput:
    return CaseInput(case_id=case_id, title=WAGES_TITLE, body=body, **fields)


def a_prediction(department: str = "人社局", version: str = "3", **fields: Any) -> PredictionInput:
    values: dict[str, Any] = {
        "model_name": "grievance-triage",
        "model_version": version,
        "department": department,
        "department_confidence": 0.91,
        "needs_review": False,
        "top": [{"label": department, "probability": 0.91}, {"label": "住建局", "probability": 0.05}],
        "latency_ms": 3.2,
    }
    values.update(fields)
    return PredictionInput(**values)


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in range(n) on n threads released at the same moment."""
    barrier = threading.Barrier(n)

    def go(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


# -- migrations and connections ---------------------------------------------------------------------
def test_migrations_take_an_empty_database_to_head_and_back(db_url: str) -> None:
    engine = make_engine(db_url, poolclass=NullPool)
    try:
        assert current_revision(engine) is None
        assert not STORE_TABLES & set(inspect(engine).get_table_names())

        assert upgrade_database(db_url) == head_revision() is not None
        assert set(inspect(engine).get_table_names()) == STORE_TABLES | {"alembic_version"}
        assert current_revision(engine) == head_revision()
        assert upgrade_database(db_url) == head_revision()  # a second start-up changes nothing

        assert downgrade_database(db_url, "base") is None
        assert not STORE_TABLES & set(inspect(engine).get_table_names())
        assert upgrade_database(engine) == head_revision()
    finally:
        engine.dispose()


def test_orm_tables_match_what_the_migrations_create(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade_database(url)
    with Store.from_url(url) as store, store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_a_second_process_waits_for_wal_mode_while_another_writes_a_new_file(tmp_path: Path) -> None:
    # Two replicas starting on one new SQLite file: while the first writes (migrating), SQLite refuses the
    # second's switch to WAL at once instead of waiting; the store must wait, not fail to start.
    path = tmp_path / "triage.db"
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("CREATE TABLE started (at TEXT)")
    first.execute("BEGIN IMMEDIATE")
    first.execute("INSERT INTO started VALUES ('now')")
    released = threading.Timer(0.3, lambda: first.execute("COMMIT"))
    released.start()
    engine = make_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("SELECT at FROM started").scalar() == "now"
    finally:
        released.join()
        engine.dispose()
        first.close()


def test_sqlite_writers_of_one_process_queue_before_begin_immediate(tmp_path: Path) -> None:
    """A second writer waits in this process until the first is back in the pool, instead of inside SQLite's
    busy handler (which polls with sleeps of up to 100 ms); engines on the same file share the queue."""
    from sqlalchemy import event

    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade_database(url)
    first, second = Store.from_url(url), Store.from_url(url)
    events: list[str] = []
    for store, name in ((first, "first"), (second, "second")):
        event.listen(store.engine, "before_cursor_execute",
                     lambda *args, name=name: events.append(f"{name}: {args[2]}") if args[2].startswith("BEGIN IMM")
                     else None)
    holding, finish = threading.Event(), threading.Event()

    def hold() -> None:
        with first._writes.begin() as session:
            session.execute(select(1))
            holding.set()
            finish.wait(5)
            events.append("first: done")

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(5)
    writer = threading.Thread(target=lambda: second.record_case_and_prediction(a_case(), a_prediction()))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive() and events == ["first: BEGIN IMMEDIATE"]  # queued before its BEGIN
    finish.set()
    holder.join(5)
    writer.join(5)
    assert events == ["first: BEGIN IMMEDIATE", "first: done", "second: BEGIN IMMEDIATE"]
    assert second.count_predictions() == 1


def test_a_failed_sqlite_write_lets_the_next_writer_through(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    upgrade_database(url)
    store = Store.from_url(url)
    with pytest.raises(ZeroDivisionError), store._writes.begin() as session:
        session.execute(select(1))
        raise ZeroDivisionError
    done = ThreadPoolExecutor(1).submit(store.record_case_and_prediction, a_case(), a_prediction())
    assert done.result(timeout=5).is_new


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(IntegrityError), Session(store.engine) as session, session.begin():
        session.add(
            Prediction(
                case_row_id=12345,
                case_id="nobody",
                model_name="m",
                department="人社局",
                department_confidence=0.5,
                needs_review=True,
                top=[],
                created_at=T0,
            )
        )


def test_default_database_is_var_triage_db_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIAGE_DATABASE_URL", raising=False)
    url = Settings().database_url
    assert url == f"sqlite:///{tmp_path / 'var' / 'triage.db'}"
    assert not (tmp_path / "var").exists()  # settings alone create nothing

    assert upgrade_database(url) == head_revision()  # creates the folder; migrations found from any cwd
    assert (tmp_path / "var" / "triage.db").is_file()

    monkeypatch.setenv("TRIAGE_DATABASE_URL", "postgresql+psycopg://triage@db.internal:5432/triage")
    assert Settings().database_url == "postgresql+psycopg://triage@db.internal:5432/triage"


def test_migration_command_line_works_from_another_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli' / 'triage.db'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("TRIAGE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "store.migrate", "--url", url, "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    engine = make_engine(url, poolclass=NullPool)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_pooled_postgresql_connection_the_server_dropped_is_replaced_at_checkout(
    postgres_url: str, postgres_admin: Any,
) -> None:
    """A server restart or idle timeout kills pooled connections; the next request must not fail on one."""
    upgrade_database(postgres_url)
    with Store.from_url(postgres_url) as store:
        assert store.latest_prediction("none") is None  # one connection now sits in the pool
        with store.engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with postgres_admin.begin() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        assert store.latest_prediction("none") is None


def test_urls_the_store_cannot_use_are_refused_with_the_reason() -> None:
    assert make_engine("postgresql://u:secret@localhost/db").url.drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="in-memory SQLite"):
        make_engine("sqlite://")
    with pytest.raises(ValueError, match=r"unsupported database .*sqlite:///PATH") as error:
        make_engine("mysql://root:hunter2@localhost/triage")
    assert "hunter2" not in str(error.value)


# -- cases and predictions --------------------------------------------------------------------------
def test_resubmitting_the_same_case_and_text_returns_the_stored_prediction(store: Store) -> None:
    first = store.record_case_and_prediction(a_case(), a_prediction("人社局"))
    again = store.record_case_and_prediction(a_case(), a_prediction("住建局", version="4"))

    assert first.is_new and not again.is_new
    assert again.id == first.id
    assert (again.department, again.model_version) == ("人社局", "3")  # what was stored, not the new input
    assert store.count_predictions() == 1
    assert len(store.case_versions("YC1")) == 1
    assert store.existing_prediction("YC1", WAGES_TITLE, WAGES_BODY) == again
    assert store.existing_prediction("YC1", WAGES_TITLE, GAS_BODY) is None
    assert store.existing_prediction("unknown", WAGES_TITLE, WAGES_BODY) is None


def test_a_changed_text_is_a_new_case_version_whose_prediction_supersedes_the_old(store: Store) -> None:
    old = store.record_case_and_prediction(a_case(), a_prediction(risk_level="yellow"))
    new = store.record_case_and_prediction(a_case(body=GAS_BODY), a_prediction(risk_level="red"))

    assert new.is_new and new.id != old.id
    assert new.supersedes_id == old.id
    assert new.case_row_id != old.case_row_id
    assert new.text_hash == text_hash(WAGES_TITLE, GAS_BODY) != old.text_hash
    assert [p.id for p in store.predictions_for("YC1")] == [old.id, new.id]
    assert store.latest_prediction("YC1") == new
    assert [v.body for v in store.case_versions("YC1")] == [WAGES_BODY, GAS_BODY]


def test_a_text_coming_back_after_a_change_is_scored_again_not_answered_from_the_past(store: Store) -> None:
    first = store.record_case_and_prediction(a_case(), a_prediction())
    changed = store.record_case_and_prediction(a_case(body=GAS_BODY), a_prediction())
    back = store.record_case_and_prediction(a_case(), a_prediction())

    assert back.is_new and back.supersedes_id == changed.id
    assert back.case_row_id == first.case_row_id  # the text version is stored once
    assert len(store.case_versions("YC1")) == 2
    assert store.latest_prediction("YC1") == back


def test_rescore_adds_a_prediction_superseding_the_latest(store: Store) -> None:
    old = store.record_case_and_prediction(a_case(), a_prediction(version="3"))
    rescored = store.record_case_and_prediction(a_case(), a_prediction(version="4"), rescore=True)

    assert rescored.is_new and rescored.supersedes_id == old.id
    assert rescored.case_row_id == old.case_row_id
    assert rescored.model_version == "4"
    assert store.latest_prediction("YC1") == rescored
    assert store.record_case_and_prediction(a_case(), a_prediction(version="5")).id == rescored.id
    assert store.count_predictions() == 2


def test_cases_are_kept_apart_and_unknown_cases_have_no_prediction(store: Store) -> None:
    one = store.record_case_and_prediction(a_case("YC1"), a_prediction())
    two = store.record_case_and_prediction(a_case("YC2"), a_prediction())  # same text, other case

    assert two.is_new and two.supersedes_id is None and two.id != one.id
    assert store.latest_prediction("YC3") is None
    assert store.predictions_for("YC3") == []
    assert store.count_predictions() == 2


def test_times_come_back_as_utc_and_outputs_as_json(store: Store) -> None:
    beijing = timezone(timedelta(hours=8))
    created = datetime(2026, 7, 15, 9, 30, tzinfo=beijing)
    reasons = [{"text": "燃气泄漏", "start": 31, "end": 35, "weight": np.float64(0.42)}]
    record = store.record_case_and_prediction(
        a_case(created_at=created, reporter_id="U20417", channel="12345热线"),
        a_prediction(
            top=[("人社局", np.float32(0.75)), ("住建局", 0.25)],
            risk_level="red",
            risk_probabilities={"red": 0.8, "yellow": 0.15, "green": 0.05},
            reasons=reasons,
            hot_issue_id="burst-7",
        ),
    )
    stored = store.latest_prediction("YC1")
    assert stored is not None
    assert stored.created_at.tzinfo is not None and stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == record.created_at
    assert stored.top == [["人社局", 0.75], ["住建局", 0.25]]
    assert stored.risk_probabilities == {"red": 0.8, "yellow": 0.15, "green": 0.05}
    assert stored.reasons == [{"text": "燃气泄漏", "start": 31, "end": 35, "weight": 0.42}]
    assert stored.hot_issue_id == "burst-7"

    (version,) = store.case_versions("YC1")
    assert version.created_at == created and version.created_at.utcoffset() == timedelta(0)
    assert version.created_at.hour == 1
    assert (version.reporter_id, version.channel) == ("U20417", "12345热线")

    with pytest.raises(ValueError, match="cannot store as JSON"):
        store.record_case_and_prediction(a_case("YC9"), a_prediction(risk_probabilities={"red": math.nan}))
    assert store.latest_prediction("YC9") is None  # nothing half-stored


# -- reviews ----------------------------------------------------------------------------------------
def test_reviews_are_appended_and_must_name_a_prediction_of_their_case(store: Store) -> None:
    prediction = store.record_case_and_prediction(a_case(), a_prediction(risk_level="yellow"))
    other = store.record_case_and_prediction(a_case("YC2"), a_prediction())

    first = store.add_review("YC1", prediction.id, "reviewer-a", decided_level="red", note="有燃气泄漏")
    second = store.add_review("YC1", prediction.id, "reviewer-b", decided_department="应急管理局")
    assert [r.id for r in store.reviews_for("YC1")] == [first.id, second.id]
    assert store.reviews_for("YC1")[0].decided_level == "red"
    assert store.reviews_for("YC2") == []

    with pytest.raises(ValueError, match="not a prediction of case 'YC1'"):
        store.add_review("YC1", other.id, "reviewer-a")
    with pytest.raises(ValueError, match="not a prediction of case"):
        store.add_review("YC1", 999_999, "reviewer-a")


# -- hot issues -------------------------------------------------------------------------------------
def test_adding_the_same_alert_twice_stores_it_once(store: Store) -> None:
    payload = {"keywords": ["车贷", "58"], "place": "天心区", "members": 12, "cases": ["A", "B"]}
    assert store.add_alert("alert-1", "burst-1", "yellow", T0, payload) is True
    assert store.add_alert("alert-1", "burst-1", "red", T0 + timedelta(days=1), {"changed": True}) is False

    stored = store.alert("alert-1")
    assert stored is not None
    assert (stored.level, stored.raised_at, stored.payload) == ("yellow", T0, payload)
    assert store.alert("no-such-alert") is None
    with store.engine.connect() as connection:
        assert connection.execute(select(HotspotAlert.id)).all() == [(stored.id,)]


def test_open_alerts_are_newest_first_one_per_burst_and_filter_by_level(store: Store) -> None:
    store.add_alert("a-yellow", "burst-a", "yellow", T0, {})
    store.add_alert("b-yellow", "burst-b", "yellow", T0 + timedelta(hours=1), {})
    store.add_alert("a-red", "burst-a", "red", T0 + timedelta(hours=2), {})  # burst a escalates
    store.add_alert("c-yellow", "burst-c", "yellow", T0 + timedelta(hours=3), {})

    assert [a.alert_id for a in store.open_alerts()] == ["c-yellow", "a-red", "b-yellow"]
    assert [a.alert_id for a in store.open_alerts(level="yellow")] == ["c-yellow", "b-yellow"]
    assert [a.alert_id for a in store.open_alerts(level="red")] == ["a-red"]
    assert [a.alert_id for a in store.open_alerts(limit=2)] == ["c-yellow", "a-red"]
    assert [a.alert_id for a in store.open_alerts(since=T0 + timedelta(hours=2))] == ["c-yellow", "a-red"]
    assert [a.alert_id for a in store.alerts_for_burst("burst-a")] == ["a-yellow", "a-red"]


def test_snapshot_round_trip(store: Store) -> None:
    assert store.latest_snapshot() is None
    payload = {
        "version": "hotspots-1",
        "window_days": 30,
        "bursts": {"b1": {"keywords": ["燃气", "泄漏"], "centroid": {"燃气": 0.7, "泄漏": 0.3}, "cases": 3}},
        "clock": "2026-07-15T01:30:00+00:00",
    }
    older = store.save_snapshot({"version": "hotspots-0"})
    saved = store.save_snapshot(payload)

    latest = store.latest_snapshot()
    assert latest == saved
    assert latest is not None and latest.payload == payload and latest.detector_version == "hotspots-1"
    assert latest.created_at >= older.created_at
    assert store.latest_snapshot(detector_version="hotspots-0") == older
    assert store.save_snapshot({}, detector_version="v9").detector_version == "v9"


def test_a_real_detector_snapshot_comes_back_equal(store: Store, demo_csv: Path) -> None:
    """Stored as given and encoded once by the engine's codec: what restarts read must be what was kept."""
    detector = HotspotDetector()
    for e in list(events_from_frame(load_cases([demo_csv]).frame))[:400]:
        detector.observe(e)
    payload = detector.snapshot()
    assert payload["bursts"] and payload["alerts"]

    saved = store.save_snapshot(payload, detector_version=detector.config.version)

    latest = store.latest_snapshot(detector.config.version)
    assert latest is not None and latest.id == saved.id and latest.payload == payload
    assert HotspotDetector.from_snapshot(latest.payload).snapshot() == payload


@pytest.mark.parametrize("value", [
    {"题目": "燃气泄漏", "n": 3, "p": 0.1 + 0.2, "none": None, "nested": [[1, 2.5], {"a": True}]},
    {"big": 2**70, "negative": -(2**65)},  # beyond 64 bits: orjson refuses them, the codec still stores them
    {1: "integer key", "tuple": (1, 2), "set": {"x"}},
])
def test_the_codec_writes_what_the_standard_library_would(value: Any) -> None:
    assert jsonable.decode(jsonable.encode(value)) == json.loads(json.dumps(value, default=list))


def test_the_codec_converts_numpy_and_datetimes_as_to_json_does() -> None:
    value = {"i": np.int64(7), "f": np.float32(0.5), "a": np.arange(3), "t": datetime(2026, 7, 15, 9, 30)}
    assert jsonable.decode(jsonable.encode(value)) == jsonable.to_json(value) == {
        "i": 7, "f": 0.5, "a": [0, 1, 2], "t": "2026-07-15T09:30:00+00:00"}


def test_detector_state_is_the_latest_snapshot_plus_members_stored_after_it(store: Store) -> None:
    def member(case_id: str, hours: int) -> bool:
        place = {"tokens": ["燃气", "泄漏"], "place": "翠湖湾小区"}
        return store.add_hotspot_member("burst-1", case_id, T0 + timedelta(hours=hours), f"U{case_id}", place)

    assert member("C1", 0) and member("C2", 1)
    snapshot = store.save_snapshot({"version": "hotspots-1", "members": ["C1", "C2"]})
    assert member("C4", 5) and member("C3", 4)
    assert member("C3", 4) is False  # a case joins a burst once

    after = store.members_since(snapshot.created_at)
    assert [m.case_id for m in after] == ["C3", "C4"]  # in the order the cases were observed
    assert after[0].payload == {"tokens": ["燃气", "泄漏"], "place": "翠湖湾小区"}
    assert after[0].observed_at == T0 + timedelta(hours=4) and after[0].reporter_id == "UC3"
    assert [m.case_id for m in store.members_since(None)] == ["C1", "C2", "C3", "C4"]
    assert [m.case_id for m in store.members_since(T0 + timedelta(hours=1), by="observed_at")] == ["C3", "C4"]
    assert [m.case_id for m in store.members_of("burst-1")] == ["C1", "C2", "C3", "C4"]
    assert store.members_of("burst-2") == []


def test_everything_survives_a_restart(db_url: str) -> None:
    upgrade_database(db_url)
    with Store.from_url(db_url) as before:
        prediction = before.record_case_and_prediction(a_case(), a_prediction(risk_level="red"))
        before.add_alert("alert-1", "burst-1", "red", T0, {"cases": ["YC1"]})
        before.add_hotspot_member("burst-1", "YC1", T0, "U1", {"tokens": ["工资"]})
        snapshot = before.save_snapshot({"version": "hotspots-1", "bursts": {"burst-1": {"cases": 1}}})

    assert upgrade_database(db_url) == head_revision()  # the next start-up
    with Store.from_url(db_url) as after:
        assert after.latest_prediction("YC1") == prediction
        assert after.record_case_and_prediction(a_case(), a_prediction()).id == prediction.id
        assert [a.alert_id for a in after.open_alerts()] == ["alert-1"]
        assert after.latest_snapshot() == snapshot
        assert [m.case_id for m in after.members_since(None)] == ["YC1"]
        assert after.count_predictions() == 1


# -- concurrency ------------------------------------------------------------------------------------
def test_concurrent_inserts_of_one_alert_leave_one_row(db_url: str) -> None:
    upgrade_database(db_url)
    stores = [Store.from_url(db_url) for _ in range(8)]  # one engine each, like separate processes
    try:
        stored = run_together(8, lambda i: stores[i].add_alert("alert-1", "burst-1", "red", T0, {"by": i}))
        assert sorted(stored) == [False] * 7 + [True]
        assert len(stores[0].open_alerts()) == 1
    finally:
        for opened in stores:
            opened.dispose()


def test_concurrent_resubmissions_of_one_case_store_one_prediction(store: Store) -> None:
    records = run_together(8, lambda i: store.record_case_and_prediction(a_case(), a_prediction()))
    assert sum(r.is_new for r in records) == 1
    assert len({r.id for r in records}) == 1
    assert store.count_predictions() == 1


def test_concurrent_changed_texts_form_one_chain(store: Store) -> None:
    records = run_together(
        6, lambda i: store.record_case_and_prediction(a_case(body=f"{WAGES_BODY}（补充{i}）"), a_prediction())
    )
    assert all(r.is_new for r in records)
    chain = store.predictions_for("YC1")
    assert len(chain) == 6
    assert [p.supersedes_id for p in chain] == [None] + [p.id for p in chain[:-1]]


# -- append-only and wiring -------------------------------------------------------------------------
def test_the_store_offers_no_way_to_change_or_remove_a_row() -> None:
    public = {name for name in dir(Store) if not name.startswith("_") and callable(getattr(Store, name))}
    changing = ("update", "delete", "remove", "edit", "set", "replace", "upsert", "drop", "clear", "purge")
    assert not {name for name in public if name.startswith(changing)}, public
    assert {"record_case_and_prediction", "add_alert", "add_hotspot_member", "add_review", "save_snapshot"} <= public


def test_get_store_answers_503_until_the_app_has_a_store(db_url: str, tmp_path: Path) -> None:
    app = create_app(Settings(database_url=db_url, model_uri=str(tmp_path / "no-model"), spool_dir=tmp_path / "spool"))

    @app.get("/count")
    def count(opened: StoreDep) -> dict[str, int]:
        return {"predictions": opened.count_predictions()}

    client = TestClient(app, headers=ADMIN)
    response = client.get("/count")  # the lifespan has not run: no store yet
    assert response.status_code == 503 and response.json()["detail"] == NO_STORE
    with client:  # the lifespan opens the store
        assert client.get("/count").json() == {"predictions": 0}


def test_the_feed_read_under_the_lock_is_paged_and_joined_by_an_index(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every feed read under the lock has a LIMIT (the planner then walks primary keys; without one, stale
    statistics made PostgreSQL scan the whole cases table per case) and all pages reach the detector."""
    from sqlalchemy import event

    from store import hotspot_feed

    monkeypatch.setattr(hotspot_feed, "INTAKE_PAGE", 2)
    received = datetime(2026, 9, 1, tzinfo=UTC)
    intakes = [hotspot_feed.FeedIntake(CaseInput(f"FEED-{i}", "路灯坏了", f"第{i}盏路灯不亮"), received)
               for i in range(5)]
    statements: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    seen: list[int] = []

    def apply(snapshot: Any, entries: list[hotspot_feed.FeedEntry], own: Any) -> hotspot_feed.DetectorWrites:
        seen.extend(e.seq for e in entries)
        return hotspot_feed.DetectorWrites()

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        own = store.hotspot_intake(intakes, after_seq=0, apply=apply, detector_version="test")
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert seen == own and len(own) == 5
    feed_reads = [s for s in statements if "FROM hotspot_feed JOIN cases" in s]
    assert len(feed_reads) == 3 and all("LIMIT" in s for s in feed_reads)
    indexes = {ix["name"] for ix in inspect(store.engine).get_indexes("hotspot_feed")}
    assert "ix_hotspot_feed_case_row_id" in indexes


def test_the_feed_intake_answers_a_resubmission_from_the_store_and_leaves_it_out_of_the_feed(store: Store) -> None:
    """Issue 15, one store transaction per case: the intake's read of the cases' latest predictions (under
    their locks) finds a resubmission, so no lookup before it is needed. Only a `skip_if_stored` intake with
    the stored text is left out; a changed text, a new case and an intake without the flag are appended."""
    from store import hotspot_feed

    first = store.record_case_and_prediction(a_case(), a_prediction())
    received = datetime(2026, 9, 1, tzinfo=UTC)
    intakes = [
        hotspot_feed.FeedIntake(a_case(), received, skip_if_stored=True),
        hotspot_feed.FeedIntake(CaseInput("YC1", WAGES_TITLE, GAS_BODY), received, skip_if_stored=True),
        hotspot_feed.FeedIntake(CaseInput("YC2", WAGES_TITLE, WAGES_BODY), received, skip_if_stored=True),
        hotspot_feed.FeedIntake(a_case(), received),
    ]
    told: list[Any] = []

    def apply(snapshot: Any, entries: list[hotspot_feed.FeedEntry], own: Any) -> hotspot_feed.DetectorWrites:
        told.append((list(own), [e.case_id for e in entries]))
        return hotspot_feed.DetectorWrites()

    got = store.hotspot_intake(intakes, after_seq=0, apply=apply, detector_version="test")
    assert got[0] == first and not got[0].is_new
    assert all(isinstance(seq, int) for seq in got[1:])
    assert told == [([None, *got[1:]], ["YC1", "YC2", "YC1"])]
    assert [e.seq for e in store.hotspot_feed_after(0)] == got[1:]
    assert store.count_predictions() == 1  # the intake itself stores no prediction
