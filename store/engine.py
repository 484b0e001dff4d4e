"""Engines for the audit store: SQLite by default (a file, WAL mode), PostgreSQL through psycopg 3.

`make_engine(url)` is the only place engines are built, so every connection gets the same settings:

* SQLite: WAL journal (readers never block the writer), foreign keys enforced, a busy timeout, and
  transactions that SQLAlchemy begins explicitly. Python's `sqlite3` module otherwise starts a
  transaction only at the first INSERT, so a read followed by a write would not be one transaction.
  Connections from `writer(engine)` begin with `BEGIN IMMEDIATE`: they take the write lock before
  reading, so read-then-write methods cannot race another writer (threads or processes) and wait up to
  the busy timeout instead of failing with "database is locked".
* PostgreSQL: `postgresql://` and `postgresql+psycopg://` both use psycopg 3; the store's writers use
  unique constraints, `ON CONFLICT DO NOTHING` and transaction-scoped advisory locks (see
  `store.repository`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url

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


def _on_sqlite_begin(connection: Connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for the store's database, with `pool_pre_ping`, hidden parameters and the settings above.

    A SQLite file's folder is created if missing. Extra keyword arguments go to `create_engine`.
    """
    parsed = normalise_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    # Statement parameters are case text, notes and reporter ids: keep them out of SQL echo logs and out of
    # the messages of database errors (which end up in tracebacks in the log).
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_folder(parsed)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
    else:
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("connect_timeout", 10)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    logger.debug("store engine for %s", redact(parsed))
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (and pool) whose transactions are marked as writing (SQLite: `BEGIN IMMEDIATE`)."""
    return engine.execution_options(**{WRITE_OPTION: True})
