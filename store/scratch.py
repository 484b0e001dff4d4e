"""Throw-away PostgreSQL schemas, for tests and benchmarks that must not touch anything else in a database.

A schema is created by an admin engine; the returned URL makes every connection work inside it (its
`search_path` set through the connection's `options`), so the store's migrations and queries run there
unchanged. Dropping the schema removes everything they made.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool


def admin_engine(url: str | URL, connect_timeout: int = 3) -> tuple[Engine | None, str | None]:
    """An engine for creating schemas, or None and why the server cannot be reached (its first line)."""
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": connect_timeout})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        return None, str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return engine, None


def schema_url(url: str | URL, schema: str) -> str:
    """`url` with connections confined to `schema` (password kept: the result is used to connect)."""
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


def create_schema(admin: Engine, prefix: str) -> str:
    """A new, empty schema named `prefix` plus a random suffix; returns its name."""
    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    return schema


def drop_schema(admin: Engine, schema: str) -> None:
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
