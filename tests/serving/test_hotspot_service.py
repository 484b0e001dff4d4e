"""The service around the hot-issue detector: periodic snapshots never hold up triage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from models import hotspots
from models.hotspot_settings import load_hotspot_config
from models.hotspots import CaseEvent, CaseTerms, StateCapture, terms_key
from serving import hotspot_service
from serving.app import create_app
from serving.dependencies import services_of
from serving.hotspot_service import GroupedAnswer, HotspotService, answer_group
from serving.settings import Settings
from store import CaseInput, PendingPrediction, PredictionInput, Store, upgrade_database

START = datetime(2026, 9, 1, 8, 0)


class BlockingSink:
    """Writes like the store, but a snapshot waits until the test lets it go."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.release = threading.Event()
        self.started = threading.Event()
        self.snapshots = 0

    def add_hotspot_member(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.add_hotspot_member(*args, **kwargs)

    def add_alert(self, *args: Any, **kwargs: Any) -> Any:
        return self.store.add_alert(*args, **kwargs)

    def save_snapshot(self, payload: Mapping[str, Any], *, detector_version: str | None = None) -> Any:
        self.started.set()
        assert self.release.wait(timeout=60)
        self.snapshots += 1
        return self.store.save_snapshot(payload, detector_version=detector_version)


def _observe_lamps(service: HotspotService, numbers: range) -> None:
    """Street-lamp cases, an hour apart, each from its own reporter."""
    for i in numbers:
        service.observe(f"C{i}", START + timedelta(hours=i), f"第{i}号路灯不亮", "晚上很黑", f"U{i}")


def _observe_lamps_aside(service: HotspotService, numbers: range) -> threading.Event:
    """`_observe_lamps` in a thread of its own; the event is set once all of them were observed."""
    observed = threading.Event()

    def observe() -> None:
        _observe_lamps(service, numbers)
        observed.set()

    threading.Thread(target=observe, daemon=True).start()
    return observed


def test_a_slow_snapshot_write_does_not_block_observing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    with Store.from_url(url) as store:
        sink = BlockingSink(store)
        service = HotspotService.restore(store, load_hotspot_config(None), snapshot_every=5, sink=sink)
        _observe_lamps(service, range(5))  # the 5th case makes a snapshot due
        assert sink.started.wait(timeout=30)
        # With the write blocked, triage goes on: observing never waits for the snapshot.
        assert _observe_lamps_aside(service, range(5, 12)).wait(timeout=30), "observe waited for the write"
        assert store.latest_snapshot() is None
        sink.release.set()
        service.close()  # waits for the write in flight, then saves the 7 cases observed since
        assert sink.snapshots == 2
        snapshot = store.latest_snapshot()
        assert snapshot is not None and snapshot.payload["n_docs"] == 12


def test_rendering_a_snapshot_happens_outside_the_lock_and_keeps_the_state_it_was_taken_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rendering thousands of members takes a large fraction of a second; intake must not wait for it."""
    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    rendering, release = threading.Event(), threading.Event()
    render = StateCapture.snapshot

    def slow_render(capture: StateCapture) -> dict[str, Any]:
        rendering.set()
        assert release.wait(timeout=60)
        return render(capture)

    monkeypatch.setattr(StateCapture, "snapshot", slow_render)
    with Store.from_url(url) as store:
        service = HotspotService.restore(store, load_hotspot_config(None), snapshot_every=5)
        _observe_lamps(service, range(5))  # the 5th case makes a snapshot due; its rendering then blocks
        assert rendering.wait(timeout=30)
        assert _observe_lamps_aside(service, range(5, 8)).wait(timeout=30), "observe waited for the rendering"
        release.set()
        deadline = time.monotonic() + 30
        while store.latest_snapshot() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        snapshot = store.latest_snapshot()
        assert snapshot is not None and snapshot.payload["n_docs"] == 5  # the state when it was due
        service.close()
        latest = store.latest_snapshot()
        assert latest is not None and latest.payload["n_docs"] == 8


def test_snapshots_wait_their_minimum_interval_however_many_cases_come(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each snapshot renders the whole state: under heavy intake the count alone made one every few seconds
    per worker. Due by count, it still waits until `snapshot_seconds` have passed since the last one."""
    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    clock = [1000.0]
    monkeypatch.setattr(hotspot_service, "_monotonic", lambda: clock[0])
    with Store.from_url(url) as store:
        service = HotspotService.restore(store, load_hotspot_config(None), snapshot_every=5, snapshot_seconds=60)
        _observe_lamps(service, range(12))
        assert store.latest_snapshot() is None  # due by count twice over, not by time
        clock[0] += 61
        _observe_lamps(service, range(12, 13))  # the next case after the interval starts one
        deadline = time.monotonic() + 30
        while store.latest_snapshot() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        snapshot = store.latest_snapshot()
        assert snapshot is not None and snapshot.payload["n_docs"] == 13
        clock[0] += 30
        _observe_lamps(service, range(13, 20))
        time.sleep(0.2)
        assert store.latest_snapshot().id == snapshot.id  # 30 s later: due by count, not by time
        service.close()  # shutdown saves what came since, whatever the interval
        latest = store.latest_snapshot()
        assert latest is not None and latest.payload["n_docs"] == 20


class OutageSink:
    """Like the app's DurableWriter: `down` while the database is unreachable; writes then are spooled."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.spooled: list[tuple[str, tuple[Any, ...]]] = []

    def mark_down(self, exc: BaseException) -> None:
        self.down = True

    def add_hotspot_member(self, *args: Any, **kwargs: Any) -> Any:
        self.spooled.append(("member", args))

    def add_alert(self, *args: Any, **kwargs: Any) -> Any:
        self.spooled.append(("alert", args))

    def save_snapshot(self, payload: Mapping[str, Any], *, detector_version: str | None = None) -> Any:
        return False if self.down else self.store.save_snapshot(payload, detector_version=detector_version)


def test_cases_observed_during_an_outage_join_the_shared_feed_when_the_database_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    config = load_hotspot_config(None)
    cases = [(f"C{i}", START + timedelta(hours=i), f"幸福小区{i % 3 + 1}号楼电梯又坏了", "老人上下楼很困难", f"U{i}")
             for i in range(30)]
    with Store.from_url(url) as store:
        sink = OutageSink(store)
        service = HotspotService.restore(store, config, sink=sink)
        other = HotspotService.restore(store, config)  # another replica, unaffected
        for case in cases[:10]:
            service.observe(*case)
        sink.down = True
        for case in cases[10:20]:
            assignment, _ = service.observe(*case)
            assert assignment.burst_id is not None  # still answered, from this replica's own state
        assert [e.case_id for e in store.hotspot_feed_after(0)] == [c[0] for c in cases[:10]]
        assert sink.spooled, "members and alerts of the outage went to the spool"
        sink.down = False
        for case in cases[20:]:
            service.observe(*case)
        # The outage's cases were appended when the database returned, before the next case, once each.
        assert [e.case_id for e in store.hotspot_feed_after(0)] == [c[0] for c in cases]
        other.sync()
        rebuilt = HotspotService.restore(store, config)
        assert service.detector.snapshot() == other.detector.snapshot() == rebuilt.detector.snapshot()
        assert store.alerts_for_burst(service.detector.snapshot()["bursts"][0]["burst_id"])


def test_a_case_observed_during_an_outage_joins_the_feed_although_its_answer_was_stored_meanwhile(
    tmp_path: Path,
) -> None:
    """A request's case asks the feed to leave it out when the store already holds its answer (a
    resubmission, `Observation.skip_if_stored`). Observed alone during an outage, its spooled answer may be
    stored before the case reaches the feed: it still joins, since this replica counted it."""
    from serving.hotspot_service import Observation

    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    config = load_hotspot_config(None)
    with Store.from_url(url) as store:
        sink = OutageSink(store)
        service = HotspotService.restore(store, config, sink=sink)
        case_id, when, title, body, reporter = _elevator(0)
        sink.down = True
        (outcome,) = service.observe_many([Observation(case_id, when, title, body, reporter, skip_if_stored=True)])
        assert not isinstance(outcome, BaseException) and outcome[0] is not None
        # The spool's replay stores the answer once the database is back, before the next request.
        store.record_case_and_prediction(CaseInput(case_id, title, body, when, reporter),
                                         PredictionInput("m", "1", "城乡建设", 0.9, False, []))
        sink.down = False
        service.observe(*_elevator(1))
        assert [e.case_id for e in store.hotspot_feed_after(0)] == ["C0", "C1"]
        assert service.detector.snapshot() == HotspotService.restore(store, config).detector.snapshot()


def test_local_mode_keeps_no_feed_and_restores_from_the_cases_as_the_shared_mode_would(tmp_path: Path) -> None:
    config = load_hotspot_config(None)
    cases = [(f"L{i}", START + timedelta(hours=i), f"幸福小区{i % 2 + 1}号楼电梯又坏了", "老人上下楼很困难", f"U{i}")
             for i in range(12)]
    states = {}
    for shared in (False, True):
        url = f"sqlite:///{tmp_path / f'{shared}.db'}"
        upgrade_database(url)
        with Store.from_url(url) as store:
            service = HotspotService.restore(store, config, shared=shared, snapshot_every=5)
            for case_id, when, title, body, reporter in cases:
                service.observe(case_id, when, title, body, reporter)
                if not shared:  # local mode stores no case rows itself: the triage transaction does
                    store.record_case_and_prediction(
                        CaseInput(case_id, title, body, when, reporter),
                        PredictionInput("m", "1", "城乡建设", 0.9, False, []),
                    )
            assert (store.hotspot_feed_last_seq() > 0) is shared
            assert store.alerts_for_burst(service.detector.snapshot()["bursts"][0]["burst_id"])
            states[shared] = service.detector.snapshot()
            # Crash-like restart (no close): the latest periodic snapshot plus what came after it.
            restored = HotspotService.restore(store, config, shared=shared)
            assert restored.detector.snapshot()["bursts"] == states[shared]["bursts"]
    assert states[False]["bursts"] == states[True]["bursts"]


def test_a_second_process_on_one_sqlite_file_in_local_mode_refuses_to_start(demo_bundle_dir: Path,
                                                                            tmp_path: Path) -> None:
    """Two processes owning one SQLite file's hot-issue state had each counted half of every burst, silently."""
    import os
    import time

    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import Settings
    from tests.keys import API_KEYS
    from tests.serving.uvicorn_servers import Server

    url = f"sqlite:///{tmp_path / 'triage.db'}"
    env = {**os.environ, "TRIAGE_MODEL_URI": str(demo_bundle_dir), "TRIAGE_DATABASE_URL": url,
           "TRIAGE_SPOOL_DIR": str(tmp_path / "spool-2"), "TRIAGE_API_KEYS": API_KEYS}
    owner = Settings(model_uri=str(demo_bundle_dir), database_url=url, spool_dir=tmp_path / "spool-1")
    with TestClient(create_app(owner)) as client:
        assert client.get("/healthz").status_code == 200
        second = Server(env, tmp_path / "second.log")
        give_up = time.monotonic() + 120
        while second.process.poll() is None and time.monotonic() < give_up:
            time.sleep(0.2)
        second.stop()
        log = (tmp_path / "second.log").read_text(encoding="utf-8")
        assert second.process.returncode not in (None, 0), log[-2000:]
        assert "another process already keeps the hot-issue state" in log and "TRIAGE_HOTSPOT_SHARING=feed" in log
        feed = Server({**env, "TRIAGE_HOTSPOT_SHARING": "feed"}, tmp_path / "feed.log")
        try:
            feed.wait_ready()  # the feed is the way to run several processes
        finally:
            feed.stop()
    again = Server(env, tmp_path / "again.log")  # the owner stopped: the lock is free again
    try:
        again.wait_ready()
    finally:
        again.stop()


def test_after_an_outage_the_detector_is_rebuilt_outside_the_feed_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild reads the snapshot and the feed without the lock; the locked intake then replays only
    what came since (the outage's own cases and the new one), not the whole feed: done under the lock it
    had held every replica's intake 8.5-12 s."""
    from store import hotspot_feed

    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    config = load_hotspot_config(None)

    def case(i: int) -> tuple[Any, ...]:
        title = f"幸福小区{i % 7 + 1}号楼电梯又坏了"
        return (f"C{i}", START + timedelta(minutes=i), title, "老人上下楼很困难", f"U{i}")

    with Store.from_url(url) as store:
        sink = OutageSink(store)
        service = HotspotService.restore(store, config, sink=sink)
        other = HotspotService.restore(store, config)
        service.observe(*case(0))
        sink.down = True
        for i in range(1, 4):
            service.observe(*case(i))  # observed alone
        for i in range(4, 404):
            other.observe(*case(i))  # meanwhile the other replica appends 400 cases
        sink.down = False
        under_lock: list[int] = []
        real = hotspot_feed._all_entries_after

        def recording(session: Any, after_seq: int) -> list[Any]:
            entries = real(session, after_seq)
            under_lock.append(len(entries))
            return entries

        monkeypatch.setattr(hotspot_feed, "_all_entries_after", recording)
        service.observe(*case(404))
        assert under_lock == [4]  # the three observed alone and the new case, nothing of the 400
        other.sync()
        assert service.detector.snapshot() == other.detector.snapshot()
        rebuilt = HotspotService.restore(store, config)
        assert service.detector.snapshot() == rebuilt.detector.snapshot()


def _elevator(i: int) -> tuple[Any, ...]:
    return (f"C{i}", START + timedelta(minutes=i), f"幸福小区{i % 3 + 1}号楼电梯又坏了", "老人上下楼很困难", f"U{i}")


def _queue_behind_a_held_intake(
    store: Store, service: HotspotService, cases: list[tuple[Any, ...]], answer: Any
) -> tuple[list[list[str]], dict[str, Any]]:
    """The first case's feed transaction waits until every other case is queued behind it; returns the
    case ids of each feed transaction and what each request got (its result, or the exception raised)."""
    real = store.hotspot_intake
    transactions: list[list[str]] = []
    entered, release = threading.Event(), threading.Event()

    def held(intakes: Any, **kwargs: Any) -> Any:
        transactions.append([item.case.case_id for item in intakes])
        entered.set()
        assert release.wait(timeout=60)
        return real(intakes, **kwargs)

    store.hotspot_intake = held  # type: ignore[method-assign]
    got: dict[str, Any] = {}
    keys = threading.Lock()

    def request(case: tuple[Any, ...]) -> None:
        try:
            outcome: Any = service.observe_and_answer(*case, answer=answer)
        except Exception as exc:  # the request's own answer
            outcome = exc
        with keys:  # a case sent twice: its second answer under "<id>#2"
            got[case[0] if case[0] not in got else f"{case[0]}#2"] = outcome

    threads = [threading.Thread(target=request, args=(cases[0],))]
    threads[0].start()
    assert entered.wait(timeout=30)
    for case in cases[1:]:
        threads.append(threading.Thread(target=request, args=(case,)))
        threads[-1].start()
    deadline = time.monotonic() + 30
    while service.waiting < len(cases) - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    return transactions, got


def _answers(cases: list[tuple[Any, ...]], *, fails: str | None = None, made_at: datetime | None = None) -> Any:
    """An `answer` as the service gives one: the case's prediction to store in the feed's transaction
    (`fails`: the case whose answer cannot be made)."""
    by_id = {case[0]: case for case in cases}

    def answer(assignment: Any, level: str | None) -> PendingPrediction:
        if assignment.case_id == fails:
            raise ValueError("this case's answer cannot be made")
        _, created, title, body, reporter = by_id[assignment.case_id]
        prediction = PredictionInput("m", "1", "城乡建设", 0.9, False, [], hot_issue_id=assignment.hot_issue_id)
        return PendingPrediction(CaseInput(assignment.case_id, title, body, created, reporter, None), prediction,
                                 made_at=made_at)

    return answer


@pytest.fixture
def feed_store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store for replicas on the shared feed."""
    url = f"sqlite:///{tmp_path / 'hs.db'}"
    upgrade_database(url)
    with Store.from_url(url) as store:
        yield store


def test_cases_queued_behind_a_feed_transaction_commit_together_each_with_its_own_answer(feed_store: Store) -> None:
    """Group commit: the requests that waited while the feed was held go into one transaction (one lock
    round and one commit for all), and each gets its own assignment and stored prediction, as if observed
    one after another in the feed's order."""
    config = load_hotspot_config(None)
    cases = [_elevator(i) for i in range(7)]
    store = feed_store
    service = HotspotService.restore(store, config)
    transactions, got = _queue_behind_a_held_intake(store, service, cases, _answers(cases))
    assert transactions[0] == ["C0"]
    assert len(transactions) == 2 and sorted(transactions[1]) == [f"C{i}" for i in range(1, 7)]
    feed = [entry.case_id for entry in store.hotspot_feed_after(0)]
    assert feed == transactions[0] + transactions[1]
    # Each request got its own case's answer, stored once, with the burst the feed's order gives it.
    fresh = type(service.detector)(config)
    for entry in store.hotspot_feed_after(0):
        expected = fresh.observe(CaseEvent(entry.case_id, entry.observed_at.replace(tzinfo=None), entry.title,
                                           entry.body, entry.reporter_id, None))
        assignment, _level, record = got[entry.case_id]
        assert assignment.case_id == entry.case_id and assignment.burst_id == expected.burst_id
        assert (assignment.hot_issue_id, assignment.cases) == (expected.hot_issue_id, expected.cases)
        (stored,) = store.predictions_for(entry.case_id)
        assert record is not None and record.id == stored.id and stored.hot_issue_id == expected.hot_issue_id
    assert service.detector.snapshot() == fresh.snapshot()


def test_one_failing_answer_in_a_group_fails_its_own_request_only(feed_store: Store) -> None:
    config = load_hotspot_config(None)
    cases = [_elevator(i) for i in range(5)]
    store = feed_store
    service = HotspotService.restore(store, config)
    transactions, got = _queue_behind_a_held_intake(store, service, cases, _answers(cases, fails="C3"))
    assert len(transactions[1]) == 4  # the group of four was tried together, then one by one
    assert isinstance(got["C3"], ValueError)
    for case_id in ("C0", "C1", "C2", "C4"):
        assert got[case_id][2] is not None and len(store.predictions_for(case_id)) == 1
    assert store.predictions_for("C3") == [] and store.case_versions("C3") == []
    assert "C3" not in [entry.case_id for entry in store.hotspot_feed_after(0)]
    service.observe(*_elevator(5))  # the next request finds the detector rebuilt from what committed
    assert service.detector.snapshot() == HotspotService.restore(store, config).detector.snapshot()


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_case_sent_twice_in_one_group_is_stored_once_and_both_requests_get_that_prediction(
    db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'hs.db'}" if db == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade_database(url)
    config = load_hotspot_config(None)
    cases = [_elevator(0), _elevator(1), _elevator(2), _elevator(1), _elevator(4)]
    with Store.from_url(url) as store:
        service = HotspotService.restore(store, config)
        answer = _answers(cases, made_at=datetime(2026, 9, 2))
        transactions, got = _queue_behind_a_held_intake(store, service, cases, answer)
        assert len(transactions) == 2 and sorted(transactions[1]) == ["C1", "C1", "C2", "C4"]
        (stored,) = store.predictions_for("C1")
        assert got["C1"][2].id == got["C1#2"][2].id == stored.id
        for case_id in ("C0", "C2", "C4"):
            assert [p.id for p in store.predictions_for(case_id)] == [got[case_id][2].id]
        assert len(store.case_versions("C1")) == 1


def _elevator_cases(n: int) -> list[tuple[Any, ...]]:
    return [(f"E{i}", START + timedelta(hours=i), f"幸福小区{i % 3 + 1}号楼电梯又坏了", "老人上下楼很困难", f"U{i}")
            for i in range(n)]


def test_other_replicas_replay_the_feed_from_its_stored_terms_without_segmenting_a_text(
    feed_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_hotspot_config(None)
    writer = HotspotService.restore(feed_store, config)
    reader = HotspotService.restore(feed_store, config)
    for case in _elevator_cases(20):
        writer.observe(*case)
    key = terms_key(config)
    assert all(CaseTerms.from_json(e.terms, key) is not None for e in feed_store.hotspot_feed_after(0))

    def segmenting(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a replayed case was segmented again although the feed holds its terms")

    monkeypatch.setattr(hotspots, "case_terms", segmenting)
    assert reader.sync() == 20
    restored = HotspotService.restore(feed_store, config)
    assert reader.detector.snapshot() == writer.detector.snapshot() == restored.detector.snapshot()
    assert writer.detector.alerts, "the elevator cases did raise an alert"


@pytest.mark.timeout(60)  # the read used to run under the lock the intakes take: this deadlocked
def test_a_background_catch_up_reads_outside_the_lock_and_never_replays_a_row_twice(
    feed_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follower's read held the detector's lock: with a database that stopped answering, every request
    waited for it with no end. It now reads unlocked; rows an intake replayed meanwhile are skipped."""
    config = load_hotspot_config(None)
    writer = HotspotService.restore(feed_store, config)
    reader = HotspotService.restore(feed_store, config)
    cases = _elevator_cases(16)
    for case in cases[:10]:
        writer.observe(*case)
    read = feed_store.hotspot_feed_after
    locked_during_read: list[bool] = []

    def read_while_the_reader_takes_cases(after: int, limit: int | None = None) -> Any:
        page = read(after, limit)  # rows 1-10, as the follower saw them
        locked_during_read.append(reader._lock.locked())
        monkeypatch.setattr(feed_store, "hotspot_feed_after", read)
        for case in cases[10:]:  # meanwhile the reader's own requests replay rows 1-10 and append 11-16
            reader.observe(*case)
        return page

    monkeypatch.setattr(feed_store, "hotspot_feed_after", read_while_the_reader_takes_cases)
    assert reader.sync() == 0  # every row it read was replayed by the intakes meanwhile
    assert locked_during_read == [False]
    writer.sync()
    assert reader.feed_seq == writer.feed_seq == len(cases)
    assert reader.detector.snapshot() == writer.detector.snapshot()


def test_feed_terms_made_under_other_settings_are_recomputed_from_the_text(
    feed_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_hotspot_config(None)
    writer = HotspotService.restore(feed_store, config)
    for case in _elevator_cases(12):
        writer.observe(*case)
    # A replica whose segmenter or term settings differ (here: a newer terms format) must not reuse them.
    monkeypatch.setattr(hotspots, "TERMS_FORMAT", hotspots.TERMS_FORMAT + 1)
    monkeypatch.setattr(hotspots, "_terms_keys", {})
    computed: list[str] = []
    real = hotspots.case_terms

    def counting(title: str, body: str, *args: Any, **kwargs: Any) -> Any:
        computed.append(title)
        return real(title, body, *args, **kwargs)

    monkeypatch.setattr(hotspots, "case_terms", counting)
    restored = HotspotService.restore(feed_store, config)
    assert len(computed) == 12
    assert restored.detector.snapshot() == writer.detector.snapshot()


class _Grouped(GroupedAnswer):
    calls: ClassVar[list[list[str]]] = []

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def many(cls, items: Any) -> list[Any]:
        cls.calls.append([answer.name for answer, _, _ in items])
        return [f"{answer.name}@{level}" for answer, _, level in items]


def test_a_groups_answers_keep_their_order_and_grouped_ones_are_made_in_one_call() -> None:
    """Grouped answers (the triage service's: one pass of the risk model for the feed's group) are made
    together; plain callables one by one; every answer lands at its own case."""
    _Grouped.calls = []
    plain = lambda assignment, level: f"plain@{level}"  # noqa: E731
    items: list[Any] = [(_Grouped("a"), None, "red"), (plain, None, "yellow"), (_Grouped("b"), None, None),
                        (_Grouped("c"), None, "green")]
    assert answer_group(items) == ["a@red", "plain@yellow", "b@None", "c@green"]
    assert _Grouped.calls == [["a", "b", "c"]]
    assert _Grouped("d")(None, "red") == "d@red"  # alone, an answer is a group of one
    assert _Grouped.calls[-1] == ["d"]


def test_the_service_takes_its_snapshot_interval_from_the_settings(demo_bundle_dir: Path, tmp_path: Path) -> None:
    assert Settings().hotspot_snapshot_seconds == 60.0
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        spool_dir=tmp_path / "spool", hotspot_snapshot_seconds=7.5)
    app = create_app(settings)
    with TestClient(app):
        assert services_of(app).hotspots.snapshot_seconds == 7.5
    with pytest.raises(ValidationError, match="hotspot_snapshot_seconds"):
        Settings(hotspot_snapshot_seconds=-1)
