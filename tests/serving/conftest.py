"""Database fixtures shared by the store and service tests: SQLite files and PostgreSQL schemas.

PostgreSQL (127.0.0.1:5432, database `test`) gets a fresh schema per test, dropped afterwards, so the
database is left as it was; its tests are skipped, with the reason, only when the server is unreachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from store.scratch import admin_engine, create_schema, drop_schema, schema_url
from tests.keys import API_KEYS
from tests.serving.uvicorn_servers import Server

POSTGRES_URL = os.environ.get("TRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCHEMA_PREFIX = f"triage_store_test_{uuid.uuid4().hex[:8]}_"


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Any]:
    """An engine on the PostgreSQL `test` database; skips (saying why) if the server is unreachable."""
    engine, reason = admin_engine(POSTGRES_URL)
    if engine is None:
        pytest.skip(
            f"PostgreSQL server unreachable at {make_url(POSTGRES_URL).render_as_string(hide_password=True)} "
            f"({reason}); the store's PostgreSQL tests need it (start PostgreSQL or set TRIAGE_TEST_POSTGRES_URL)"
        )
    yield engine
    # Leave the `test` database clean even if a test's own teardown did not run.
    with engine.begin() as connection:
        leftovers = list(connection.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :prefix"), {"prefix": SCHEMA_PREFIX + "%"}
        ).scalars())
    for schema in leftovers:
        drop_schema(engine, schema)
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Any) -> Iterator[str]:
    """A URL whose connections work in a fresh, empty schema of their own."""
    schema = create_schema(postgres_admin, SCHEMA_PREFIX)
    yield schema_url(POSTGRES_URL, schema)
    drop_schema(postgres_admin, schema)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file (its folder not yet made), or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'triage.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def server_env(db_url: str, demo_bundle_dir: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRIAGE_MODEL_URI": str(demo_bundle_dir),
        "TRIAGE_DATABASE_URL": db_url,
        "TRIAGE_SPOOL_DIR": str(tmp_path / "spool"),
        "TRIAGE_API_KEYS": API_KEYS,
        "TRIAGE_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
