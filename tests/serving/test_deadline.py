"""`serving.deadline.Deadline`: bounded database calls, and threads that end with the service."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.deadline import Deadline, StoreHung
from serving.settings import Settings


def deadline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("triage-db-")]


def test_a_call_answers_within_the_deadline_and_a_hung_one_raises_store_hung() -> None:
    deadline = Deadline(0.2, workers=2)
    release = threading.Event()
    try:
        assert deadline.call(lambda x: x + 1, 41) == 42
        started = time.monotonic()
        with pytest.raises(StoreHung, match=r"within 0\.2 s"):
            deadline.call(release.wait, 10)
        assert time.monotonic() - started < 5
    finally:
        release.set()
        deadline.close()


def test_close_ends_the_idle_threads_and_a_busy_one_when_its_call_returns() -> None:
    release = threading.Event()
    deadline = Deadline(5, workers=3)
    threads = list(deadline._threads)
    busy = deadline.submit(release.wait, 10)
    while not busy.running():
        time.sleep(0.01)
    deadline.close()
    waited = time.monotonic() + 10  # the idle ones end as soon as they are scheduled (a loaded machine is slow)
    while sum(t.is_alive() for t in threads) > 1 and time.monotonic() < waited:
        time.sleep(0.01)
    assert sum(t.is_alive() for t in threads) == 1  # the one in the call: abandoned calls keep their thread
    release.set()
    assert busy.result(timeout=5) is True
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)


def test_a_service_stopped_leaves_no_database_call_threads(tmp_path: Path) -> None:
    before = set(deadline_threads())
    settings = Settings(model_uri=str(tmp_path / "no-model"), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        spool_dir=tmp_path / "spool")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert set(deadline_threads()) - before  # the writer's and the background jobs' threads run
    started = set(deadline_threads()) - before
    for thread in started:
        thread.join(5)
    assert not [t.name for t in started if t.is_alive()]


def test_shutdown_waits_for_a_round_in_progress_but_not_for_a_hung_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warning round still writing after the service stopped deadlocked a schema dropped right after."""
    import asyncio

    from serving import background

    monkeypatch.setattr(background, "SHUTDOWN_GRACE_SECONDS", 1.0)
    started, finished, hang = threading.Event(), threading.Event(), threading.Event()

    def slow_round() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    def hung_round() -> None:
        started.set()
        hang.wait(timeout=30)

    async def stop_during(job: object) -> float:
        rounds = Deadline(60, workers=1)
        task = asyncio.create_task(background._every("test", 60, job, rounds, lambda: False))  # type: ignore[arg-type]
        while not started.is_set():
            await asyncio.sleep(0.01)
        began = time.monotonic()
        await background.stop_jobs([task])
        rounds.close()
        return time.monotonic() - began

    asyncio.run(stop_during(slow_round))
    assert finished.is_set()  # stopped only once the round in progress had ended
    started.clear()
    took = asyncio.run(stop_during(hung_round))
    hang.set()
    assert 0.9 < took < 5  # a hung round holds the shutdown for the grace period only
