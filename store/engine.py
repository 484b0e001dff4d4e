"""Engines for the audit store: SQLite by default (a file, WAL mode), PostgreSQL through psycopg 3.

`make_engine(url)` is the only place engines are built, so every connection gets the same settings:

* SQLite: WAL journal (readers never block the writer), foreign keys enforced, a busy timeout, and
  transactions that SQLAlchemy begins explicitly. Python's `sqlite3` module otherwise starts a
  transaction only at the first INSERT, so a read followed by a write would not be one transaction.
  Connections from `writer(engine)` begin with `BEGIN IMMEDIATE`: they take the write lock before
  reading, so read-then-write methods cannot race another writer (threads or processes) and wait up to
  the busy timeout instead of failing with "database is locked". Within one process those writers queue
  on a lock per database file (`_WriteGate`) before `BEGIN IMMEDIATE`, and each goes as soon as the one
  before it is back in the pool: SQLite's own busy handler polls with sleeps of up to 100 ms, which made
  a triage write wait up to ~100 ms behind a background job's short transaction.
* PostgreSQL: `postgresql://` and `postgresql+psycopg://` both use psycopg 3; the store's writers use
  unique constraints, `ON CONFLICT DO NOTHING` and transaction-scoped advisory locks (see
  `store.repository`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url

from store import jsonable

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000
#: Execution option marking connections that will write (SQLite: `BEGIN IMMEDIATE`).
WRITE_OPTION = "triage_store_write"
SUPPORTED = "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"


#: Where `TRIAGE_DATABASE_URL` is read when no URL is given (the service's settings read the same variable).
DATABASE_URL_ENV = "TRIAGE_DATABASE_URL"


def default_database_url() -> str:
    """SQLite file `var/triage.db` under the working directory (the folder is made when first opened)."""
    return f"sqlite:///{Path.cwd() / 'var' / 'triage.db'}"


def configured_database_url() -> str:
    """`TRIAGE_DATABASE_URL`, else the default SQLite file: the store's own answer, for tools that run
    without the service's settings (migrations)."""
    return os.environ.get(DATABASE_URL_ENV) or default_database_url()


def redact(url: str | URL) -> str:
    """The URL without its password, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


def normalise_url(url: str | URL) -> URL:
    """Parse `url`, choosing psycopg 3 for a bare `postgresql://` and rejecting what the store can't use."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise ValueError(
                "an in-memory SQLite database cannot hold the audit store (each connection would see "
                f"its own empty database); use a file: {SUPPORTED}"
            )
        return parsed
    raise ValueError(f"unsupported database {redact(parsed)!r}: use {SUPPORTED}")


def _ensure_sqlite_folder(url: URL) -> None:
    database = url.database or ""
    if database.startswith("file:"):  # a URI filename (`?uri=true`): leave it to SQLite
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's `begin` event emit BEGIN; the driver then stays out of transaction control.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (it stays so), retrying within the busy timeout.

    Why retry: on a new file that another process is already writing (two replicas migrating at start),
    SQLite refuses the switch with "database is locked" at once, without waiting in its busy handler
    (its deadlock avoidance), so the process would fail to start. Once the file is in WAL this is a read.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.25)


class _WriteGate:
    """This process's writers of one SQLite file, one at a time, in the order they arrive.

    Held from before `BEGIN IMMEDIATE` until the connection goes back to the pool (after its commit or
    rollback), or is closed or invalidated. A writer that cannot get it within the busy timeout goes on
    without it (SQLite's lock still serialises the writes): a gate never blocks a write for good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: Any = None  # the DBAPI connection holding the gate

    def enter(self, dbapi_connection: Any) -> None:
        if self._holder is dbapi_connection:  # a second transaction before check-in: already ours
            return
        if self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            self._holder = dbapi_connection
        else:
            logger.warning("SQLite write gate not free within %d ms; writing without it", SQLITE_BUSY_TIMEOUT_MS)

    def leave(self, dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None and self._holder is dbapi_connection:
            self._holder = None
            self._lock.release()


_gates: dict[str, _WriteGate] = {}
_gates_lock = threading.Lock()


def _write_gate(url: URL) -> _WriteGate:
    """The gate of the database file `url` names (engines on the same file share it)."""
    database = url.database or ""
    key = database if database.startswith("file:") else str(Path(database).expanduser().resolve())
    with _gates_lock:
        return _gates.setdefault(key, _WriteGate())


def _sqlite_begin(gate: _WriteGate) -> Any:
    def on_begin(connection: Connection) -> None:
        if not connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        dbapi_connection = connection.connection.dbapi_connection
        gate.enter(dbapi_connection)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            gate.leave(dbapi_connection)
            raise

    return on_begin


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for the store's database: pings pooled server connections, hides parameters, and the
    settings above.

    A SQLite file's folder is created if missing. Extra keyword arguments go to `create_engine`.
    """
    parsed = normalise_url(url)
    # A server can drop a pooled connection (restart, idle timeout): ping it at checkout. A SQLite file
    # has no server to lose, and the ping was a statement more in every transaction of the hot path.
    kwargs.setdefault("pool_pre_ping", parsed.get_backend_name() != "sqlite")
    # Statement parameters are case text, notes and reporter ids: keep them out of SQL echo logs and out of
    # the messages of database errors (which end up in tracebacks in the log).
    kwargs.setdefault("hide_parameters", True)
    kwargs.setdefault("json_serializer", jsonable.encode)
    kwargs.setdefault("json_deserializer", jsonable.decode)
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_folder(parsed)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        gate = _write_gate(parsed)
        event.listen(engine, "begin", _sqlite_begin(gate))
        for released in ("checkin", "close", "close_detached", "invalidate", "soft_invalidate"):
            event.listen(engine, released, gate.leave)
    else:
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("connect_timeout", 10)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    logger.debug("store engine for %s", redact(parsed))
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (and pool) whose transactions are marked as writing (SQLite: `BEGIN IMMEDIATE`)."""
    return engine.execution_options(**{WRITE_OPTION: True})
