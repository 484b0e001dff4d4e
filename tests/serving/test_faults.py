"""Faults (issue 5, item 2): the database goes away mid-run, a model artefact is incompatible, no model
is registered at all. Each test says what must still hold: every accepted case stored exactly once,
the old model serving, a clear reason on /readyz and in the log."""

from __future__ import annotations

import logging
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from models.bundle import TriageBundle
from serving.app import create_app
from serving.deadline import DB_CALL_THREADS
from serving.dependencies import services_of
from serving.services import open_store
from serving.settings import Settings
from serving.spool import SPOOL_GLOB, DurableWriter, Spool
from store import CaseInput, PredictionInput, Store, upgrade_database
from store.tables import utcnow
from tests.keys import ADMIN
from tests.serving.tcp_proxy import TcpProxy
from tests.serving.test_triage_flow import GAS_REPORTS, gas_case

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
WAIT_SECONDS = 90

# Texts that must never reach a log (the gas reports' words are checked too).
CASES = [
    ("东港区恒发鞋厂拖欠工人四个月工资", "我们二十多名工人被欠薪，请劳动保障监察大队帮忙追讨。"),
    ("孩子上小学报名需要准备哪些材料", "请问今年秋季一年级新生报名需要户口本和房产证明吗？"),
    ("青林路夜间施工噪音扰民", "青林路地铁站工地每天夜里十二点后还在打桩，附近居民无法入睡。"),
    ("公交12路停运没有通知", "今天早上公交12路突然停运，站牌没有任何通知，很多人上班迟到。"),
]


def case(tag: str, i: int) -> dict[str, Any]:
    title, body = CASES[i % len(CASES)]
    return {"case_id": f"{tag}-{i}", "title": title, "body": f"{body}（{tag}-{i}）", "reporter_id": f"P-{tag}-{i}"}


def gas(i: int) -> dict[str, Any]:
    """A gas report received now (the detector's window follows the latest case time it has seen)."""
    return {k: v for k, v in gas_case(i).items() if k != "created_at"}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(SPOOL_GLOB)) if directory.exists() else []


# -- (a) the database becomes unreachable mid-run ------------------------------------------------------
@pytest.mark.postgres
def test_postgres_outage_answers_everything_and_stores_each_prediction_once(
    demo_bundle_dir: Path, postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = tmp_path / "spool"
    with TcpProxy(POSTGRES_HOST, POSTGRES_PORT) as proxy:
        proxied = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(model_uri=str(demo_bundle_dir), database_url=proxied, spool_dir=spool_dir,
                            db_connect_timeout=2, spool_retry_initial_seconds=0.2, spool_retry_max_seconds=1)
        caplog.set_level(logging.INFO)
        with TestClient(create_app(settings), headers=ADMIN) as client:
            before = [client.post("/v1/triage", json=case("BEFORE", i)).json() for i in range(4)]
            assert all(a["prediction_id"] is not None for a in before)

            proxy.cut()
            during = [client.post("/v1/triage", json=case("DURING", i)) for i in range(3)]
            during += [client.post("/v1/triage", json=gas(i)) for i in range(len(GAS_REPORTS))]
            during.append(client.post("/v1/triage", json=case("DURING", 0)))  # resubmitted while spooling
            during.append(client.post("/v1/triage", json=case("BEFORE", 1)))  # stored before, same text
            during.append(client.post("/v1/triage", params={"rescore": True}, json=case("BEFORE", 0)))
            assert [r.status_code for r in during] == [200] * len(during), [r.text for r in during]
            answers = [r.json() for r in during]
            assert all(a["prediction_id"] is None and a["stored_at"] is None for a in answers)
            assert all(a["department"]["label"] and len(a["department"]["top"]) == 3 for a in answers)
            assert answers[3 + len(GAS_REPORTS) - 1]["hot_issue"]["cases"] == len(GAS_REPORTS)

            ready = client.get("/readyz")
            assert ready.status_code == 200
            spooled_count = re.match(r"degraded: (\d+) records spooled, database unreachable", ready.json()["store"])
            assert spooled_count and int(spooled_count[1]) > len(during)  # predictions, members and the alert
            (spooled,) = spool_files(spool_dir)
            assert stat.S_IMODE(spooled.stat().st_mode) == 0o600
            assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700

            proxy.restore()
            wait_for(lambda: "store" not in client.get("/readyz").json(), "the spool to drain")
            assert spool_files(spool_dir) == []
            after = client.post("/v1/triage", json=case("AFTER", 0)).json()
            assert after["prediction_id"] is not None

    logged = caplog.text
    assert "audit store unreachable" in logged and "wrote" in logged
    for title, body in [*CASES, *GAS_REPORTS]:
        assert title not in logged and body[:12] not in logged

    with Store.from_url(postgres_url) as store:
        expected = {f"BEFORE-{i}": 1 for i in range(4)} | {f"DURING-{i}": 1 for i in range(3)}
        expected |= {f"GAS-{i}": 1 for i in range(len(GAS_REPORTS))} | {"BEFORE-0": 2, "AFTER-0": 1}
        stored = {case_id: store.predictions_for(case_id) for case_id in expected}
        assert {case_id: len(p) for case_id, p in stored.items()} == expected
        assert store.count_predictions() == sum(expected.values())
        first, rescored = stored["BEFORE-0"]
        assert rescored.supersedes_id == first.id
        # Spooled predictions keep the time they were made, not the time they reached the database.
        assert stored["GAS-0"][0].created_at < stored["AFTER-0"][0].created_at
        # The gas burst's alert, raised during the outage, and its members reached the database.
        assert "hot-GAS-0" in {a.burst_id for a in store.open_alerts()}
        assert [m.case_id for m in store.members_of("hot-GAS-0")] == [f"GAS-{i}" for i in range(len(GAS_REPORTS))]


class Outage:
    """Makes a store's methods fail as an unreachable database does, until `end()`."""

    METHODS = ("record_case_and_prediction", "existing_prediction", "hotspot_local_intake", "add_hotspot_member",
               "add_alert", "save_snapshot", "ping")

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        for name in self.METHODS:
            monkeypatch.setattr(store, name, self._guard(getattr(store, name)))

    def _guard(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
            return method(*args, **kwargs)

        return guarded


@pytest.fixture
def sqlite_client(demo_bundle_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        spool_dir=tmp_path / "spool", spool_retry_initial_seconds=0.1, spool_retry_max_seconds=0.5)
    with TestClient(create_app(settings), headers=ADMIN) as client:
        yield client


def test_sqlite_outage_spools_and_a_restart_replays_what_was_left(
    demo_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        spool_dir=tmp_path / "spool", spool_retry_initial_seconds=0.1, spool_retry_max_seconds=0.5)
    with TestClient(create_app(settings), headers=ADMIN) as client:
        outage = Outage(services_of(client.app).store, monkeypatch)
        client.post("/v1/triage", json=case("S", 0))
        outage.down = True
        answers = [client.post("/v1/triage", json=case("S", i)) for i in range(1, 4)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert services_of(client.app).writer.spool.pending() == 3
    # The process stopped while the database was still down: the records stay on disk, nothing is lost...
    assert len(spool_files(tmp_path / "spool")) == 1
    # ...and the next start writes them before it serves.
    with TestClient(create_app(settings), headers=ADMIN) as again:
        assert "store" not in again.get("/readyz").json()
        with Store.from_url(settings.database_url) as fresh:
            assert [len(fresh.predictions_for(f"S-{i}")) for i in range(4)] == [1, 1, 1, 1]
    assert spool_files(tmp_path / "spool") == []


def test_sqlite_outage_drains_in_the_background_when_the_database_returns(
    sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = sqlite_client.app
    outage = Outage(services_of(app).store, monkeypatch)
    outage.down = True
    for i in range(3):
        assert sqlite_client.post("/v1/triage", json=gas(i)).status_code == 200
    batch = sqlite_client.post("/v1/triage/batch", json={"cases": [case("B", i) for i in range(4)]})
    assert batch.status_code == 200
    assert [r["prediction_id"] for r in batch.json()["results"]] == [None] * 4
    assert sqlite_client.get("/readyz").json()["store"].startswith("degraded: ")
    outage.down = False
    wait_for(lambda: "store" not in sqlite_client.get("/readyz").json(), "the spool to drain")
    store: Store = services_of(app).store
    assert store.count_predictions() == 7
    assert [len(store.predictions_for(f"B-{i}")) for i in range(4)] == [1, 1, 1, 1]
    assert [m.case_id for m in store.members_of(store.open_alerts()[0].burst_id)] == ["GAS-0", "GAS-1", "GAS-2"]


def test_after_an_outage_new_writes_go_to_the_database_while_the_backlog_drains_under_load(
    sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under continued load the writer had never left spool mode: every new write joined the backlog."""
    app = sqlite_client.app
    writer = services_of(app).writer
    outage = Outage(services_of(app).store, monkeypatch)
    outage.down = True
    spooled = [sqlite_client.post("/v1/triage", json=case("OUT", i)).json() for i in range(20)]
    assert all(a["prediction_id"] is None for a in spooled)
    slow_apply = writer._apply

    def slowly(*args: Any) -> None:  # a long backlog: each replayed record takes a while
        time.sleep(0.05)
        slow_apply(*args)

    monkeypatch.setattr(writer, "_apply", slowly)
    outage.down = False
    wait_for(lambda: not writer.down, "the database to be seen again")
    during = []
    give_up = time.monotonic() + WAIT_SECONDS
    while writer.spool.pending() and time.monotonic() < give_up:  # load goes on while the backlog replays
        during.append(sqlite_client.post("/v1/triage", json=case("LOAD", len(during))).json())
    assert writer.spool.pending() == 0, "the backlog did not drain while requests kept coming"
    assert len(during) >= 5
    assert all(a["prediction_id"] is not None for a in during), "new writes still went to the spool"
    store: Store = services_of(app).store
    assert [len(store.predictions_for(f"OUT-{i}")) for i in range(20)] == [1] * 20


def test_with_neither_database_nor_spool_triage_refuses_with_503(
    demo_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        spool_dir=blocker / "spool")
    with TestClient(create_app(settings), headers=ADMIN) as client:
        Outage(services_of(client.app).store, monkeypatch).down = True
        answer = client.post("/v1/triage", json=case("X", 0))
        assert answer.status_code == 503
        assert "spool cannot be written" in answer.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "spool cannot be written" in ready.json()["detail"]


def test_replaying_a_spool_twice_stores_each_record_once(db_url: str, tmp_path: Path) -> None:
    """A crash after records reached the database but before the spool file was deleted replays them
    again; a write that committed although its caller saw an error is spooled too. Neither duplicates."""
    upgrade_database(db_url)
    spool_dir = tmp_path / "spool"
    with Store.from_url(db_url) as store:
        # The ambiguous commit: the database stored it, the spool holds it as well (same `made_at`).
        made_at = utcnow()
        top = [{"label": "城乡建设", "probability": 0.9}]
        prediction = PredictionInput("grievance-triage", "1", "城乡建设", 0.9, False, top)
        committed = CaseInput("AMBIGUOUS", "标题", "正文")
        store.record_case_and_prediction(committed, prediction, made_at=made_at)

        dead = DurableWriter(Store.from_url("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                            connect_args={"connect_timeout": 1}), Spool(spool_dir))
        assert dead.record_prediction(CaseInput("C-1", "标题", "第一次"), prediction) is None
        assert dead.record_prediction(CaseInput("C-1", "标题", "第一次"), prediction, rescore=True) is None
        assert dead.record_prediction(CaseInput("C-1", "标题", "改过的正文"), prediction) is None
        dead.add_hotspot_member("hot-C-1", "C-1", made_at, "R-1")
        dead.add_alert("hot-C-1:yellow", "hot-C-1", "yellow", made_at, {"cases": 3})
        again = {"case": vars(committed), "prediction": vars(prediction), "rescore": True, "made_at": made_at}
        dead.spool.append("prediction", again)
        dead.spool.close()  # the process that spooled them is gone: its file is an orphan now
        (left,) = spool_files(spool_dir)
        copy = tmp_path / "copy.jsonl"
        shutil.copy(left, copy)

        live = DurableWriter(store, Spool(spool_dir))
        assert live.drain() == 6
        shutil.copy(copy, spool_dir / left.name)  # as if the crash came before the file was deleted
        assert live.drain() == 6
        assert spool_files(spool_dir) == []

        first, rescored, changed = store.predictions_for("C-1")
        assert (rescored.supersedes_id, changed.supersedes_id) == (first.id, rescored.id)
        assert len(store.predictions_for("AMBIGUOUS")) == 1
        assert store.count_predictions() == 4
        assert [m.case_id for m in store.members_of("hot-C-1")] == ["C-1"]
        assert [a.alert_id for a in store.alerts_for_burst("hot-C-1")] == ["hot-C-1:yellow"]
        live.spool.close()


def test_a_torn_last_line_is_dropped_and_a_refused_record_is_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append("prediction", {"case": {}, "prediction": {}})
    spool.append("member", {"burst_id": "b", "case_id": "c", "observed_at": None})
    path = spool_files(tmp_path)[0]
    with path.open("ab") as f:
        f.write(b'{"v":1,"id":"torn","kind":"member","da')  # the crash came mid-write
    seen: list[str] = []

    def apply(kind: str, data: dict[str, Any], record_id: str) -> None:
        if kind == "prediction":
            raise ValueError("not a prediction the store can take")
        seen.append(record_id)

    assert spool.drain(apply) == 3
    assert len(seen) == 1 and spool.pending() == 0 and spool_files(tmp_path) == []
    (rejected,) = tmp_path.glob("rejected-*.jsonl")
    assert b'"kind":"prediction"' in rejected.read_bytes()
    assert stat.S_IMODE(rejected.stat().st_mode) == 0o600


def test_a_file_another_live_process_holds_is_left_alone(tmp_path: Path) -> None:
    mine, theirs = Spool(tmp_path), Spool(tmp_path)
    theirs.append("member", {"burst_id": "b", "case_id": "c", "observed_at": None})
    assert mine.adopt() == 0  # its owner holds the lock
    theirs.close()
    assert mine.adopt() == 1
    mine.close()


# -- (b) a model reload with an incompatible artefact is refused ---------------------------------------
class NoScoring:
    """Unpickles fine, but is no sklearn pipeline: no classes_, no transform, no predict_proba."""


@pytest.fixture
def reload_client(demo_bundle_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        spool_dir=tmp_path / "spool", reload_model_dir=tmp_path)
    with TestClient(create_app(settings), headers=ADMIN) as client:
        yield client


@pytest.mark.parametrize("artefact", ["wrong_object", "router_without_methods", "empty_file"])
def test_an_incompatible_model_is_refused_and_the_old_one_keeps_serving(
    reload_client: TestClient, demo_bundle: TriageBundle, tmp_path: Path, artefact: str
) -> None:
    directory = tmp_path / artefact
    directory.mkdir()
    if artefact == "wrong_object":
        joblib.dump({"router": "not a model", "thresholds": {}}, directory / "bundle.joblib")
    elif artefact == "router_without_methods":
        TriageBundle(router=NoScoring(), thresholds=demo_bundle.thresholds,  # type: ignore[arg-type]
                     target_precision=0.9, metadata={"model_version": "broken"}).save(directory)
    else:
        (directory / "bundle.joblib").write_bytes(b"")
    response = reload_client.post("/v1/admin/reload", json={"model_uri": str(directory)})
    assert response.status_code == 409, response.text
    assert "still serving grievance-triage version test" in response.json()["detail"]
    triaged = reload_client.post("/v1/triage", json=case(f"RELOAD-{uuid.uuid4().hex[:6]}", 0))
    assert triaged.status_code == 200 and triaged.json()["model"]["version"] == "test"
    assert reload_client.get("/readyz").json()["model"]["version"] == "test"


# -- (d) start-up with no registered model -------------------------------------------------------------
@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Put logging back as it was: creating an MLflow store runs Alembic's `fileConfig`, which gives
    `sqlalchemy.engine` a handler and stops it propagating, for every later test in the process."""
    registry = logging.root.manager.loggerDict
    before = set(registry.values())
    loggers = [logging.getLogger()] + [logger for logger in before if isinstance(logger, logging.Logger)]
    saved = {logger: (logger.level, logger.propagate, list(logger.handlers), logger.disabled) for logger in loggers}
    yield
    for logger in list(registry.values()):
        if isinstance(logger, logging.Logger) and logger not in before:
            logger.handlers.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate, logger.disabled = True, False
    for logger, (level, propagate, handlers, disabled) in saved.items():
        logger.setLevel(level)
        logger.propagate, logger.handlers[:], logger.disabled = propagate, handlers, disabled


@pytest.mark.usefixtures("logging_restored")
def test_start_up_with_no_registered_model_says_so_on_readyz_in_the_log_and_on_triage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    registry = f"sqlite:///{tmp_path / 'empty-mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    settings = Settings(model_uri="models:/grievance-triage@champion",
                        database_url=f"sqlite:///{tmp_path / 'triage.db'}", spool_dir=tmp_path / "spool")
    caplog.set_level(logging.INFO)
    with TestClient(create_app(settings), headers=ADMIN) as client:
        ready = client.get("/readyz")
        triaged = client.post("/v1/triage", json=case("NOMODEL", 0))
        health = client.get("/healthz")
    assert ready.status_code == 503
    reason = ready.json()["detail"]
    assert "no model registered as grievance-triage@champion" in reason
    assert registry in reason and "triage train" in reason and "TRIAGE_MODEL_URI" in reason
    assert triaged.status_code == 503 and triaged.json()["detail"] == reason
    assert health.status_code == 200  # alive, just not ready
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert "no model registered as grievance-triage@champion" in message and "triage train" in message


def test_reads_that_need_an_unreachable_database_answer_503_not_500(
    sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = services_of(sqlite_client.app).store

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT … WHERE case_id = ?", {"case_id": "电话13812345678"}, ConnectionError("down"))

    monkeypatch.setattr(store, "review_queue", unreachable)
    monkeypatch.setattr(store, "case_detail", unreachable)
    for path in ("/v1/review-queue", "/v1/cases/C-1"):
        answer = sqlite_client.get(path)
        assert answer.status_code == 503, path
        assert answer.headers["retry-after"] == "5"
        assert "cannot be reached" in answer.json()["detail"] and "138" not in answer.text


def _fill_spool_until_the_disk_is_full(directory: str, limit: int) -> tuple[list[str], str]:
    """In a child process whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE: the kernel writes
    what fits, then refuses, as a full disk does): append until refused; the ids acknowledged and the error."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    spool = Spool(Path(directory))
    acknowledged: list[str] = []
    body = "燃气味很重，" * 40
    while True:
        try:
            acknowledged.append(spool.append("member", {"burst_id": "b", "case_id": body, "observed_at": None}))
        except OSError as exc:
            return acknowledged, f"{type(exc).__name__}: {exc.strerror}"


def test_a_full_spool_disk_refuses_the_write_instead_of_acknowledging_a_torn_line(tmp_path: Path) -> None:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:  # RLIMIT_FSIZE must not touch pytest itself
        acknowledged, error = pool.apply(_fill_spool_until_the_disk_is_full, (str(tmp_path), 10_000))
    assert acknowledged and "File too large" in error
    (path,) = spool_files(tmp_path)
    assert path.read_bytes().endswith(b"\n"), "a partial line was left behind"
    replayed: list[str] = []
    spool = Spool(tmp_path)
    spool.adopt()
    assert spool.drain(lambda kind, data, record_id: replayed.append(record_id)) == len(acknowledged)
    assert replayed == acknowledged  # every acknowledged record, nothing torn, nothing set aside
    assert not list(tmp_path.glob("rejected-*.jsonl"))


def test_a_failed_fsync_is_not_acknowledged_and_leaves_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    import serving.spool as spool_module

    spool = Spool(tmp_path)
    first = spool.append("member", {"burst_id": "b", "case_id": "c1", "observed_at": None})
    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        spool.append("member", {"burst_id": "b", "case_id": "c2", "observed_at": None})
    monkeypatch.setattr(spool_module.os, "fsync", real_fsync)
    replayed: list[str] = []
    assert spool.drain(lambda kind, data, record_id: replayed.append(record_id)) == 1
    assert replayed == [first]


def _stored_prediction_ids(database_url: str, case_ids: list[str]) -> dict[str, int]:
    store = Store.from_url(database_url)
    try:
        return {c: len(store.predictions_for(c)) for c in case_ids}
    finally:
        store.dispose()


@pytest.mark.parametrize("hang", ["proxy-stopped", "table-locked"])
def test_a_hung_database_switches_to_the_spool_within_the_deadline(
    demo_bundle_dir: Path, postgres_url: str, tmp_path: Path, hang: str
) -> None:
    """A database that neither answers nor fails (a stopped proxy, a lock never released) had stalled every
    request 28-31 s with nothing spooled and /readyz "ok". With the proxy stopped, the hot-issue follower's
    background read (every 0.2 s here) hangs too: it held the detector's lock, and every request waited for
    it with no end (a CI run stopped here for its whole 90 minutes)."""
    import psycopg

    deadline = 1.0
    with TcpProxy(POSTGRES_HOST, POSTGRES_PORT) as proxy:
        proxied = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(model_uri=str(demo_bundle_dir), database_url=proxied, spool_dir=tmp_path / "spool",
                            db_connect_timeout=2, db_call_timeout=deadline, spool_retry_initial_seconds=0.2,
                            spool_retry_max_seconds=1, hotspot_follow_seconds=0.2)
        with TestClient(create_app(settings), headers=ADMIN) as client:
            assert client.post("/v1/triage", json=case("HUNG-BEFORE", 0)).json()["prediction_id"] is not None
            locker = None
            if hang == "proxy-stopped":
                proxy.pause()
                time.sleep(1.0)  # the follower is now inside a read nobody answers
            else:
                dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
                locker = psycopg.connect(dsn)
                locker.execute("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
            try:
                started = time.monotonic()
                with ThreadPoolExecutor(1) as pool:  # bounded, so a request that hangs fails the test, not CI
                    posted = pool.submit(lambda: [client.post("/v1/triage", json=case("HUNG", i)) for i in range(3)])
                    try:
                        answers = posted.result(timeout=3 * deadline + 5)
                    except TimeoutError:
                        proxy.resume()  # lets the hung requests end, so the pool can close
                        raise AssertionError("requests against a hung database were still waiting") from None
                took = time.monotonic() - started
                assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
                assert all(a.json()["prediction_id"] is None for a in answers)  # spooled, acknowledged
                assert took < 3 * deadline + 5, f"three requests took {took:.1f} s"
                assert client.get("/readyz").json()["store"].startswith("degraded")
            finally:
                if locker is not None:
                    locker.rollback()
                    locker.close()
                proxy.resume()
            wait_for(lambda: "store" not in client.get("/readyz").json(), "the spool to drain")
    ids = [f"HUNG-{i}" for i in range(3)]
    assert _stored_prediction_ids(postgres_url, ids) == dict.fromkeys(ids, 1)  # each stored once


def test_cases_answered_503_never_join_the_shared_hot_issue_feed(
    demo_bundle_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    """Neither the database nor the spool could take them, so nobody got an answer: they must not count
    in a burst when the database is back (they had joined the feed and inflated it)."""
    spool_dir = tmp_path / "spool"
    with TcpProxy(POSTGRES_HOST, POSTGRES_PORT) as proxy:
        proxied = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(model_uri=str(demo_bundle_dir), database_url=proxied, spool_dir=spool_dir,
                            db_connect_timeout=2, db_call_timeout=2, spool_retry_initial_seconds=0.2,
                            spool_retry_max_seconds=1)
        with TestClient(create_app(settings), headers=ADMIN) as client:
            assert client.post("/v1/triage", json=gas(0)).json()["prediction_id"] is not None
            shutil.rmtree(spool_dir, ignore_errors=True)
            spool_dir.write_text("a file where the spool folder should be")  # the spool cannot be written
            proxy.cut()
            refused = [client.post("/v1/triage", json=gas(i)) for i in (1, 2, 3)]
            assert [r.status_code for r in refused] == [503] * 3, [r.text for r in refused]
            spool_dir.unlink()
            proxy.restore()

            def recovered() -> bool:
                ready = client.get("/readyz")
                return ready.status_code == 200 and "store" not in ready.json()

            wait_for(recovered, "the database to be back")
            later = client.post("/v1/triage", json=gas(4)).json()
            assert later["prediction_id"] is not None
            # GAS-0 and GAS-4 at most: the three refused reports do not count.
            assert later["hot_issue"] is None or later["hot_issue"]["cases"] <= 2
    store = Store.from_url(postgres_url)
    try:
        fed = {e.case_id for e in store.hotspot_feed_after(0)}
    finally:
        store.dispose()
    assert {"GAS-0", "GAS-4"} <= fed and not fed & {"GAS-1", "GAS-2", "GAS-3"}


@pytest.mark.postgres
def test_the_request_path_reuses_its_postgres_connections_under_concurrency(postgres_url: str) -> None:
    """As many calls at once as the request path runs (`DB_CALL_THREADS`) open no connection past the pool:
    with SQLAlchemy's default of 5, each call past it opened and closed a server process of its own."""
    store = open_store(Settings(database_url=postgres_url))
    opened: list[int] = []
    event.listen(store.engine, "connect", lambda *_: opened.append(1))
    try:
        def look(k: int) -> None:
            for n in range(20):
                assert store.existing_prediction(f"POOL-{k}-{n}", "t", "b") is None
                time.sleep(0.002)  # hold the connection a moment, as a request's call does

        with ThreadPoolExecutor(DB_CALL_THREADS) as pool:
            list(pool.map(look, range(DB_CALL_THREADS)))
        with ThreadPoolExecutor(DB_CALL_THREADS) as pool:
            list(pool.map(look, range(DB_CALL_THREADS)))
        # 2 x 16 threads x 20 calls: every connection past the pool would be opened again for each call. (A
        # first round that happened to overlap at most 15 calls lets the second open the 16th: both within
        # the pool, which is why this counts both rounds rather than compare them.)
        assert len(opened) <= DB_CALL_THREADS
    finally:
        store.dispose()
