"""A time limit on blocking database calls, so a database that hangs is treated as one that is down.

A database that stops answering without closing its connections (a stopped proxy, a table lock that is
never released) made every triage request wait 28-31 s: no error, so nothing spooled and readiness stayed
"ok". Neither the driver nor the kernel notices such a hang: the connection is alive, it just never answers.
`Deadline.call` runs the call on one of a few daemon threads and waits at most `seconds`; past that it
raises `StoreHung`, which the writer treats as an outage (spool, "degraded" on /readyz, replay later).

The abandoned call keeps its thread until the database answers or the connection breaks; a call still
queued when its time is up is never started. Writes abandoned this way may still commit later: the spool's
replay stores each record once (predictions are found by the instant they were made, members and alerts
by their keys), so nothing is stored twice.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")


_STOP: Any = object()  # tells one thread to end (`Deadline.close`)
#: Threads of a `Deadline` by default: the request path's database calls that can run at once (the store's
#: PostgreSQL pool is sized to match, `serving.settings.Settings.db_pool_size`).
DB_CALL_THREADS = 16


class StoreHung(Exception):
    """The database did not answer within the deadline."""


class Deadline:
    """Run blocking calls on `workers` daemon threads; wait at most `seconds` for each."""

    def __init__(self, seconds: float, workers: int = DB_CALL_THREADS) -> None:
        self.seconds = seconds
        self._jobs: queue.SimpleQueue[tuple[float, Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"triage-db-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue a call on the daemon threads; it is dropped if not started within `seconds`. For callers that
        wait in their own way (the service's periodic jobs await it without holding a thread)."""
        future: Future[T] = Future()
        self._jobs.put((time.monotonic() + self.seconds, future, lambda: function(*args, **kwargs)))
        return future

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        future = self.submit(function, *args, **kwargs)
        try:
            return future.result(timeout=self.seconds)
        except FutureTimeout:
            future.cancel()  # not started yet: it never will be
            raise StoreHung(f"no answer from the database within {self.seconds:g} s") from None

    def close(self) -> None:
        """Let the threads end: each one still running a call ends when that call returns. Calls queued after
        this are never started (their callers time out as for a hung database)."""
        for _ in self._threads:
            self._jobs.put(_STOP)

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            due, future, job = item
            if time.monotonic() > due or not future.set_running_or_notify_cancel():
                continue  # its caller gave up: a write that late must not run
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the caller, which decides
                future.set_exception(exc)
