"""Operational metrics in the Prometheus text format, summed over uvicorn workers.

prometheus_client picks its storage when it is first imported: with `PROMETHEUS_MULTIPROC_DIR` set, every
worker writes its samples to files in that directory and a scrape (answered by any one worker) reads them
all (`MultiProcessCollector`). `triage serve` makes a fresh directory per start (`fresh_multiproc_dir`);
the systemd unit gives each start a fresh `RuntimeDirectory`. Each worker, when it starts, removes the live
gauges of workers that are gone (`forget_dead_workers`) and, when it stops, its own.

Labels stay bounded: requests are labelled by route template (`/v1/cases/{case_id}`), never by the raw
path, and cases by department and risk level; no case text or id is ever a label.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # prometheus_client is imported only once the multiprocess directory is settled
    from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets (seconds): single cases take milliseconds, a full batch seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Cases per hot-issue feed transaction (at most `serving.hotspot_service.MAX_GROUP`).
FEED_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32)
#: A request that matched no route: one label value, not one per path a scanner tries.
UNMATCHED = "<unmatched>"
NO_LEVEL = "none"
_PID_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


@dataclass(frozen=True)
class _Instruments:
    requests: Any
    latency: Any
    cases: Any
    needs_review: Any
    alerts: Any
    feed_group_cases: Any
    feed_transaction: Any
    feed_lock_held: Any
    spool_records: Any
    database_up: Any
    model_info: Any


@lru_cache(maxsize=1)
def instruments() -> _Instruments:
    """The process's metric objects, made once (prometheus_client registers each name once per process)."""
    from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

    disable_created_metrics()  # `*_created` series double the exposition and say nothing a scrape needs
    directory = multiproc_dir()
    if directory is not None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the gauges below open their files now
    return _Instruments(
        requests=Counter("triage_http_requests", "HTTP requests answered, by route template and status.",
                         ["method", "route", "status"]),
        latency=Histogram("triage_http_request_duration_seconds", "Time to answer, by route template and status.",
                          ["method", "route", "status"], buckets=LATENCY_BUCKETS),
        cases=Counter("triage_cases", "Predictions recorded (new or re-scored), by department and risk level.",
                      ["department", "level"]),
        needs_review=Counter("triage_cases_needs_review", "Predictions whose routing a person should review.",
                             ["department"]),
        alerts=Counter("triage_hot_issue_alerts", "Hot-issue alerts raised by this service, by level.", ["level"]),
        feed_group_cases=Histogram(
            "triage_hot_issue_feed_group_cases",
            "Cases per hot-issue feed transaction (group commit: groups near 32 mean requests queue for the feed).",
            buckets=FEED_GROUP_BUCKETS),
        feed_transaction=Histogram(
            "triage_hot_issue_feed_transaction_seconds",
            "Time a hot-issue feed transaction took, lock wait included (other replicas wait on it).",
            buckets=LATENCY_BUCKETS),
        feed_lock_held=Histogram(
            "triage_hot_issue_feed_lock_held_seconds",
            "Time a hot-issue feed transaction held the feed lock, from taking it to its commit. Every replica "
            "waits for that lock: the sum's rate over all replicas is its utilisation, at 1 the limit of intake.",
            buckets=LATENCY_BUCKETS),
        spool_records=Gauge("triage_spool_records", "Predictions and other writes waiting in the spool.",
                            multiprocess_mode="livesum"),
        database_up=Gauge("triage_database_up", "1 while the audit store's database takes writes, else 0.",
                          multiprocess_mode="livemin"),
        model_info=Gauge("triage_model_info", "The loaded model (1), by name and version; 0 once replaced.",
                         ["name", "version"], multiprocess_mode="livemax"),
    )


def multiproc_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def fresh_multiproc_dir(parent: Path | None = None) -> Path:
    """A new empty directory for this start's samples, set as `PROMETHEUS_MULTIPROC_DIR` for the workers.

    Counters of an earlier start must not be summed into this one's, so a start never reuses a directory."""
    path = Path(tempfile.mkdtemp(prefix="triage-metrics-", dir=parent))
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def remove_multiproc_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == str(path):
        del os.environ[MULTIPROC_ENV]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(directory: Path) -> list[int]:
    """Drop the live gauges (spool, database, model) of workers that have exited; their counters stay,
    since a restarted worker's requests still happened. Returns the pids forgotten."""
    from prometheus_client import multiprocess

    dead = sorted({int(m.group(1)) for name in glob.glob(str(directory / "gauge_live*_*.db"))
                   if (m := _PID_FILE.search(os.path.basename(name))) and not _alive(int(m.group(1)))})
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))
    return dead


def registry() -> CollectorRegistry:
    """What a scrape reads: every worker's files in multiprocess mode, else this process's metrics."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    directory = multiproc_dir()
    if directory is None:
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined, path=str(directory))
    return combined


def exposition() -> tuple[bytes, str]:
    """The scrape's body and content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry()), CONTENT_TYPE_LATEST


@dataclass(eq=False)
class ServiceMetrics:
    """What the service counts. `enabled=False` (TRIAGE_METRICS_ENABLED=false) makes every call a no-op."""

    enabled: bool = True
    _model: tuple[str, str] | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.enabled:
            instruments()

    def case(self, department: str, level: str | None, needs_review: bool) -> None:
        if not self.enabled:
            return
        meters = instruments()
        meters.cases.labels(department, level or NO_LEVEL).inc()
        if needs_review:
            meters.needs_review.labels(department).inc()

    def alert(self, level: str) -> None:
        if self.enabled:
            instruments().alerts.labels(level).inc()

    def feed_group(self, cases: int, seconds: float, held: float | None = None) -> None:
        """One committed hot-issue feed transaction of `cases` cases that took `seconds`, `held` of them
        holding the feed lock (None: not known)."""
        if self.enabled:
            meters = instruments()
            meters.feed_group_cases.observe(cases)
            meters.feed_transaction.observe(seconds)
            if held is not None:
                meters.feed_lock_held.observe(held)

    def model(self, name: str | None, version: str | None) -> None:
        """The loaded model's info sample at 1, and the one it replaced at 0."""
        if not self.enabled:
            return
        current = (name or "unregistered", version or "unknown")
        if current == self._model:
            return
        gauge = instruments().model_info
        if self._model is not None:
            gauge.labels(*self._model).set(0)
        gauge.labels(*current).set(1)
        self._model = current

    def store_state(self, database_up: bool, spooled: int) -> None:
        if not self.enabled:
            return
        meters = instruments()
        meters.database_up.set(1 if database_up else 0)
        meters.spool_records.set(spooled)

    def watch(self, read: Callable[[], tuple[bool, int, tuple[str | None, str | None] | None]],
              every: float) -> None:
        """Refresh the store and model gauges every `every` seconds in the background, so a scrape answered
        by any worker (or the separate metrics port) sees every worker's current state."""
        if not self.enabled or self._thread is not None:
            return

        def refresh() -> None:
            database_up, spooled, model = read()
            self.store_state(database_up, spooled)
            if model is not None:
                self.model(*model)

        def loop() -> None:
            while True:
                try:
                    refresh()
                except Exception as exc:  # a gauge must never take the worker down
                    logger.warning("metrics refresh failed: %s", type(exc).__name__)
                if self._stop.wait(every):
                    return

        refresh()
        self._thread = threading.Thread(target=loop, name="metrics-refresh", daemon=True)
        self._thread.start()

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        """Stop refreshing; in multiprocess mode this worker's live gauges go (its counters stay)."""
        for closer in self._closers:
            closer()
        self._closers.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        directory = multiproc_dir()
        if self.enabled and directory is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), str(directory))


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/cases/{case_id}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        meters = instruments()
        self.requests, self.latency = meters.requests, meters.latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            labels = (scope.get("method", ""), route_template(scope), str(status))
            self.requests.labels(*labels).inc()
            self.latency.labels(*labels).observe(time.perf_counter() - started)


class MetricsPort:
    """`/metrics` served open on its own port (TRIAGE_METRICS_PORT), by the first worker that binds it.

    Several uvicorn workers share one port number: one of them holds it and answers for all (it reads every
    worker's files); the others find it taken and leave it. If the holder exits, the next worker started in
    its place takes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(self.port, addr=self.host, registry=registry())
        except OSError as exc:
            logger.info("metrics port %s:%d is held by another worker (%s)", self.host, self.port, exc.strerror)
            return False
        logger.info("metrics served on http://%s:%d/metrics", self.host, self.port)
        return True

    def close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.shutdown()
                self._server.server_close()
            self._server = None
