"""Alembic environment of the audit store; configured by `store.migrate.alembic_config`.

Online: runs on the connection the caller passed (`upgrade_database` does, inside its transaction), or
connects to the URL passed, or to `TRIAGE_DATABASE_URL` / the default SQLite file.
Offline (`--sql`): writes the SQL for that URL's dialect.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from store.engine import configured_database_url, make_engine, normalise_url, writer
from store.tables import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str | URL:
    url = config.attributes.get("url")
    if url is None:
        url = configured_database_url()
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )


def run_migrations_offline() -> None:
    context.configure(
        url=normalise_url(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url(), poolclass=NullPool)
    try:
        with writer(engine).connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
