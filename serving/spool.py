"""Keep answering when the audit store's database is unreachable, and lose nothing.

A write the database cannot take (a prediction, a hot-issue member, an alert) is appended to a local
spool file instead, fsync'd before the request answers, and written to the database when it returns:
a background thread probes it with backoff and replays the spool in order; on start-up the app first
replays what a previous run left. So a 200 always means "stored": in the database, or on local disk
on its way there.

Spool files (JSON lines, `<spool_dir>/spool-<time>-<pid>-<rand>.jsonl`, mode 0600 in a 0700 folder)
hold the case text and reporter id: they are as sensitive as the database itself. A file is created
only when something must be spooled and deleted as soon as its records are in the database; a partly
replayed file is replaced by one holding only the rest. Each process writes its own file and holds an
exclusive `flock` on it for as long as it owns it; a file nobody holds (its process died) is adopted
and replayed by whichever process finds it first (at start-up, or while running).

Replay is idempotent, so a record written twice (the database committed but the answer was lost, or
the process died between writing a record and deleting its file) is stored once:
`Store.record_case_and_prediction(..., made_at=..., replay=True)` finds a prediction of the same case
and text made at the same instant and stores nothing; members and alerts have unique keys.

While records are waiting (or the database was just seen failing), new writes go straight to the
spool without touching the database: requests stay fast during an outage, and a case's records reach
the database in the order they were made. The detector's snapshot is skipped then (it is rebuilt from
the cases table at start-up anyway). Logs name record ids, case ids and counts, never case text.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from serving.deadline import Deadline, StoreHung
from store import CaseInput, PredictionInput, PredictionRecord, Store
from store.tables import utcnow

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPOOL_GLOB = "spool-*.jsonl"
REJECTED_PREFIX = "rejected-"

#: Errors that mean "the database is unreachable or refused the connection", not "this record is bad".
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, PoolTimeoutError, StoreHung)


class SpoolUnavailableError(RuntimeError):
    """Neither the database nor the spool could take a write: nothing was kept, so nothing may be answered.

    The app answers 503 with `detail` (`serving.app.spool_unavailable_handler`); other callers (the demo
    seeder) see an error like any other."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


def engine_options(url: str, connect_timeout: float, call_timeout: float | None = None) -> dict[str, Any]:
    """`Store.from_url` options that bound how long a request waits for an unreachable PostgreSQL.

    `connect_timeout` bounds a new connection; `tcp_user_timeout` a connection whose peer vanished;
    `lock_timeout` (`call_timeout`) a wait for a lock someone holds (a `LOCK TABLE` left open stalled every
    write), so the server gives up when the caller's `Deadline` does and the connection comes back.
    SQLite needs none (a local file fails at once; its busy timeout bounds a lock wait).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    seconds = max(1, round(connect_timeout))
    args: dict[str, Any] = {"connect_timeout": seconds, "tcp_user_timeout": seconds * 1000}
    if call_timeout is not None:
        given = parsed.query.get("options", "")  # connect_args win over the URL's: keep what it sets
        given = " ".join(given) if isinstance(given, tuple) else given
        args["options"] = f"{given} -c lock_timeout={max(1, round(call_timeout * 1000))}".strip()
    return {"connect_args": args}


def _dir_fsync(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Held:
    """A spool file this process holds the lock of: its own, or one adopted from a dead process."""

    path: Path
    fd: int
    records: int = 0
    #: A failed append could not be cut back: nothing more is appended to this file.
    broken: bool = False


@dataclass
class Spool:
    """Append-only JSON-lines files under `directory`, one per process, replayed in order by `drain`."""

    directory: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _drain_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _current: _Held | None = field(default=None, repr=False)
    _held: list[_Held] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)

    # -- writing ------------------------------------------------------------------------------------
    def append(self, kind: str, data: Mapping[str, Any]) -> str:
        """Append one record durably (written and fsync'd) and return its id; OSError if it cannot be."""
        record_id = uuid.uuid4().hex
        line = json.dumps(
            {"v": FORMAT_VERSION, "id": record_id, "kind": kind, "spooled_at": utcnow().isoformat(), "data": data},
            ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False,
        )
        payload = (line + "\n").encode("utf-8")
        with self._lock:
            if self._current is not None and self._current.broken:
                self._held.append(self._current)  # replayed with the rest; its torn last line is dropped
                self._current = None
            held = self._current or self._open_new()
            self._current = held
            _append_whole(held, payload)
            held.records += 1
        return record_id

    def _open_new(self) -> _Held:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            path = self.directory / f"spool-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process adopted it in the instant before we locked it
                os.close(fd)
                continue
            os.fchmod(fd, 0o600)  # whatever the umask
            _dir_fsync(self.directory)
            logger.warning("spooling store writes to %s", path)
            return _Held(path, fd)

    # -- state --------------------------------------------------------------------------------------
    def pending(self) -> int:
        """Records spooled (by this process, or adopted) and not yet in the database."""
        held = self._current
        return (held.records if held else 0) + sum(h.records for h in self._held)

    def adopt(self) -> int:
        """Take over spool files no process holds (left by a run that died); returns their records."""
        found = 0
        if not self.directory.is_dir():
            return 0
        with self._lock:
            mine = {h.path for h in self._held} | ({self._current.path} if self._current else set())
            for path in sorted(self.directory.glob(SPOOL_GLOB)):
                if path in mine:
                    continue
                held = _try_lock(path)
                if held is None:
                    continue
                held.records = len(_read_lines(held.fd))
                self._held.append(held)
                found += held.records
                logger.warning("adopted spool file %s with %d records left by an earlier run", path, held.records)
            self._held.sort(key=lambda h: h.path.name)
        return found

    # -- replay -------------------------------------------------------------------------------------
    def drain(self, apply: Callable[[str, dict[str, Any], str], None]) -> int:
        """Write every spooled record with `apply(kind, data, record_id)`, oldest file first.

        Stops at the first outage error (re-raised), keeping the records not yet written; a record that
        fails for another reason is moved to a `rejected-*` file beside the spool and logged. Returns
        the number of records written.
        """
        written = 0
        with self._drain_lock:
            with self._lock:
                if self._current is not None:  # later writes start a new file
                    self._held.append(self._current)
                    self._current = None
                files = list(self._held)
            for held in files:
                written += self._drain_file(held, apply)
        return written

    def _drain_file(self, held: _Held, apply: Callable[[str, dict[str, Any], str], None]) -> int:
        lines = _read_lines(held.fd)
        done = 0
        for number, raw in enumerate(lines, start=1):
            try:
                record = json.loads(raw)
                kind, data, record_id = record["kind"], record["data"], record["id"]
            except (ValueError, KeyError, TypeError) as exc:
                if number == len(lines) and not raw.endswith(b"\n"):
                    # A write cut short by a crash before its fsync returned: that request never got a 200.
                    logger.warning("spool file %s: dropped a torn last line (%d bytes)", held.path, len(raw))
                else:
                    self._reject(raw, f"unreadable line {number} of {held.path.name}: {type(exc).__name__}")
                done += 1
                continue
            try:
                apply(kind, data, record_id)
            except Exception as exc:
                if is_outage(exc):
                    self._keep_rest(held, lines[done:])
                    raise
                self._reject(raw, f"record {record_id} ({kind}) refused by the store: {type(exc).__name__}: {exc}")
            done += 1
        with self._lock:
            self._held.remove(held)
        held.path.unlink(missing_ok=True)
        _dir_fsync(self.directory)
        os.close(held.fd)
        return done

    def _keep_rest(self, held: _Held, rest: list[bytes]) -> None:
        """Replace a partly replayed file by one holding only what is still to be written."""
        written = held.records - len(rest)
        if written <= 0:
            return
        with self._lock:
            replacement = self._open_new()
            os.write(replacement.fd, b"".join(rest))
            os.fsync(replacement.fd)
            replacement.records = len(rest)
            self._held[self._held.index(held)] = replacement
        held.path.unlink(missing_ok=True)
        _dir_fsync(self.directory)
        os.close(held.fd)

    def _reject(self, raw: bytes, reason: str) -> None:
        """Keep a record the store refuses (not an outage) aside, so it cannot block the rest."""
        path = self.directory / f"{REJECTED_PREFIX}{os.getpid()}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, raw if raw.endswith(b"\n") else raw + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        logger.error("spool: %s; kept in %s for a person to look at", reason, path)

    def close(self) -> None:
        """Release this process's files (their records stay on disk for the next start)."""
        with self._lock:
            for held in [*self._held, *([self._current] if self._current else [])]:
                os.close(held.fd)
            self._held.clear()
            self._current = None


def _append_whole(held: _Held, payload: bytes) -> None:
    """Write ``payload`` to the end of the held file and fsync it, or leave the file as it was and raise.

    ``os.write`` may write part of a line (a full disk writes what fits, then fails): the record is whole
    on disk, or the caller answers 503. A partial line left in place would have been fsynced, answered
    200 and then dropped at replay as a torn write. If the file cannot be cut back, later records go to a
    new file (this one keeps its torn line last, which replay drops)."""
    start = os.lseek(held.fd, 0, os.SEEK_END)
    view = memoryview(payload)
    try:
        while view:
            written = os.write(held.fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, "no space left on the spool device (nothing written)")
            view = view[written:]
        os.fsync(held.fd)
    except OSError:
        try:
            os.ftruncate(held.fd, start)
            os.fsync(held.fd)
        except OSError:
            held.broken = True
        raise


def _try_lock(path: Path) -> _Held | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # replayed and deleted before we locked it
            raise FileNotFoundError(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return _Held(path, fd)


def _read_lines(fd: int) -> list[bytes]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    return [line for line in data.splitlines(keepends=True) if line.strip()]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class DurableWriter:
    """The serving process's writes to the audit store, with the spool as their fallback.

    Thread-safe. `record_prediction`, `add_hotspot_member` and `add_alert` write to the database when
    it is healthy and nothing is waiting, else to the spool; `start()` runs the thread that replays
    the spool when the database is back.
    """

    def __init__(
        self, store: Store, spool: Spool, *, retry_initial: float = 0.5, retry_max: float = 30.0,
        adopt_every: float = 30.0, deadline: Deadline | None = None,
    ) -> None:
        self.store = store
        #: Database calls on the request path wait at most this long (None: as long as the driver does).
        self.deadline = deadline
        self.spool = spool
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.adopt_every = adopt_every
        self._down_since: datetime | None = None
        #: Cases with a prediction in the spool: their later writes join it, to stay in order.
        self._spooled_cases: set[str] = set()
        self._last_error: str | None = None
        self._spool_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state --------------------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """The database is unreachable, or records wait in the spool: /readyz says so."""
        return self._down_since is not None or self.spool.pending() > 0

    @property
    def down(self) -> bool:
        """The database is unreachable: writes go to the spool. Once it answers again, new writes go to it
        while the backlog drains (under continued load the spool never emptied while new writes joined it)."""
        return self._down_since is not None

    def status(self) -> tuple[bool, str]:
        """(can accept writes, words for /readyz)."""
        if self._spool_error is not None and self._down_since is not None:
            return False, f"unavailable: database unreachable ({self._last_error}) and the spool cannot be " \
                          f"written ({self._spool_error})"
        if not self.degraded:
            return True, "ok"
        if self._down_since is None:
            return True, f"degraded: {self.spool.pending()} records spooled, replaying them to the database"
        since = f" since {self._down_since.isoformat()}"
        why = f" ({self._last_error})" if self._last_error else ""
        return True, f"degraded: {self.spool.pending()} records spooled, database unreachable{since}{why}"

    def mark_down(self, exc: BaseException) -> None:
        """Another writer (the hot-issue feed) found the database unreachable: spool from now on."""
        self._mark_down(exc)

    def _mark_down(self, exc: BaseException) -> None:
        self._last_error = type(exc).__name__
        if self._down_since is None:
            self._down_since = utcnow()
            # The exception text can quote SQL parameters (case text): log its type only.
            logger.error("audit store unreachable (%s): spooling writes to %s", self._last_error, self.spool.directory)
        self._wake.set()

    def _spool(self, kind: str, data: Mapping[str, Any]) -> str:
        try:
            record_id = self.spool.append(kind, data)
        except OSError as exc:
            self._spool_error = f"{type(exc).__name__}: {exc.strerror or exc}"
            logger.error("cannot spool a %s record: %s", kind, self._spool_error)
            raise SpoolUnavailableError(
                f"the audit store is unreachable and the local spool cannot be written ({self._spool_error})"
            ) from exc
        self._spool_error = None
        self._wake.set()
        return record_id

    def bounded(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` within the deadline (StoreHung, an outage, past it)."""
        if self.deadline is None:
            return function(*args, **kwargs)
        return self.deadline.call(function, *args, **kwargs)

    # -- writes -------------------------------------------------------------------------------------
    def existing_prediction(self, case_id: str, title: str, body: str) -> PredictionRecord | None:
        """The store's stored answer for a resubmission; None while the database is down or the case has
        records waiting in the spool (the case is scored again and its replay stores nothing new)."""
        if self.down or case_id in self._spooled_cases:
            return None
        try:
            return self.bounded(self.store.existing_prediction, case_id, title, body)
        except OUTAGE_ERRORS as exc:
            self._mark_down(exc)
            return None

    def writes_directly(self, case_id: str) -> bool:
        """Whether a prediction of this case goes to the database now (not down, none of its own spooled)."""
        return not self.down and case_id not in self._spooled_cases

    def record_prediction(
        self, case: CaseInput, prediction: PredictionInput, *, rescore: bool = False,
        made_at: datetime | None = None,
    ) -> PredictionRecord | None:
        """The stored record, or None when the prediction was spooled (SpoolUnavailableError if neither).

        `made_at` (default now) identifies the prediction on replay: a caller whose earlier attempt may
        have committed passes that attempt's time, and the prediction is stored once."""
        made_at = utcnow() if made_at is None else made_at
        if self.writes_directly(case.case_id):
            try:
                return self.bounded(
                    self.store.record_case_and_prediction, case, prediction, rescore=rescore, made_at=made_at
                )
            except OUTAGE_ERRORS as exc:
                # It may have committed before the connection broke: replay finds it by `made_at`.
                self._mark_down(exc)
        # Later writes of this case follow it into the spool until the backlog is replayed: its versions
        # and predictions stay in order.
        self._spooled_cases.add(case.case_id)
        record_id = self._spool(
            "prediction",
            {"case": asdict(case), "prediction": asdict(prediction), "rescore": rescore, "made_at": made_at},
        )
        logger.info("spooled prediction of case_id=%s as record %s", case.case_id, record_id)
        return None

    def add_hotspot_member(
        self, burst_id: str, case_id: str, observed_at: datetime, reporter_id: str | None = None
    ) -> None:
        if not self.down:
            try:
                self.bounded(self.store.add_hotspot_member, burst_id, case_id, observed_at, reporter_id)
                return
            except OUTAGE_ERRORS as exc:
                self._mark_down(exc)
        self._spool("member", {"burst_id": burst_id, "case_id": case_id, "observed_at": observed_at,
                               "reporter_id": reporter_id})

    def add_alert(
        self, alert_id: str, burst_id: str, level: str, raised_at: datetime, payload: Mapping[str, Any]
    ) -> None:
        if not self.down:
            try:
                self.bounded(self.store.add_alert, alert_id, burst_id, level, raised_at, payload)
                return
            except OUTAGE_ERRORS as exc:
                self._mark_down(exc)
        self._spool("alert", {"alert_id": alert_id, "burst_id": burst_id, "level": level, "raised_at": raised_at,
                              "payload": payload})
        logger.warning("spooled hot-issue alert %s (%s) for burst %s", alert_id, level, burst_id)

    def save_snapshot(self, payload: Mapping[str, Any], *, detector_version: str | None = None) -> bool:
        """Save the detector's snapshot; skipped (False) while degraded: a restart rebuilds it from cases."""
        if self.degraded:
            return False
        try:
            self.bounded(self.store.save_snapshot, payload, detector_version=detector_version)
            return True
        except OUTAGE_ERRORS as exc:
            self._mark_down(exc)
            return False

    # -- replay -------------------------------------------------------------------------------------
    def _apply(self, kind: str, data: dict[str, Any], record_id: str) -> None:
        if kind == "prediction":
            case = dict(data["case"])
            case["created_at"], case["received_at"] = _when(case["created_at"]), _when(case["received_at"])
            self.store.record_case_and_prediction(
                CaseInput(**case), PredictionInput(**data["prediction"]), rescore=bool(data["rescore"]),
                made_at=_when(data["made_at"]), replay=True,
            )
        elif kind == "member":
            self.store.add_hotspot_member(
                data["burst_id"], data["case_id"], _when(data["observed_at"]), data.get("reporter_id")
            )
        elif kind == "alert":
            self.store.add_alert(
                data["alert_id"], data["burst_id"], data["level"], _when(data["raised_at"]), data["payload"]
            )
        else:
            raise ValueError(f"unknown spool record kind {kind!r}")

    def drain(self) -> int:
        """Adopt orphaned spool files and write everything spooled; outage errors propagate."""
        self.spool.adopt()
        if not self.spool.pending():
            return 0
        written = self.spool.drain(self._apply)
        logger.info("wrote %d spooled records to the audit store; %d left", written, self.spool.pending())
        return written

    def drain_at_start(self) -> int:
        """Replay what an earlier run left, before the app serves (an outage error stops the start)."""
        return self.drain()

    def _recover(self) -> None:
        """Probe the database; once it answers, send new writes to it again and replay the spool behind
        them; degraded mode ends when nothing is left."""
        self.bounded(self.store.ping)
        if self._down_since is not None:
            logger.warning("audit store reachable again after outage since %s; replaying %d spooled records",
                           self._down_since.isoformat(), self.spool.pending())
            self._down_since = None
            self._last_error = None
        self.drain()
        if self.spool.pending() == 0:
            self._spooled_cases.clear()
        else:  # a request spooled meanwhile (a case with records still waiting): go round again
            self._wake.set()

    def _run(self) -> None:
        delay = self.retry_initial
        last_adopt = time.monotonic()
        while not self._stop.is_set():
            if not self.degraded:
                self._wake.wait(timeout=self.adopt_every)
                self._wake.clear()
                if self._stop.is_set():
                    return
                if time.monotonic() - last_adopt >= self.adopt_every:
                    last_adopt = time.monotonic()
                    with contextlib.suppress(OSError):
                        self.spool.adopt()
                if not self.degraded:
                    continue
            try:
                self._recover()
                delay = self.retry_initial
            except Exception as exc:
                if is_outage(exc):
                    self._mark_down(exc)
                else:
                    logger.exception("spool replay failed; retrying in %.1fs", delay)
                self._wake.clear()
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="triage-spool", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the replay thread; one last replay if the database is back, else the spool stays on disk."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.degraded:
            try:
                self._recover()
            except Exception as exc:
                logger.warning("%d records stay spooled in %s (%s); the next start writes them",
                               self.spool.pending(), self.spool.directory, type(exc).__name__)
        self.spool.close()
        if self.deadline is not None:
            self.deadline.close()  # its threads end; a later bounded call times out as against a hung database

