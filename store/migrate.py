"""The store's schema migrations (Alembic), configured in code so they run from anywhere.

The migration scripts live in the `store/migrations/` package and are found relative to this file,
so `upgrade_database(url)` works from an installed package and from any working directory; there is no
`alembic.ini` to find. The service calls `upgrade_database` at start-up; by hand:

    python -m store.migrate upgrade head          # TRIAGE_DATABASE_URL or the default SQLite file
    python -m store.migrate current
    python -m store.migrate revision --autogenerate -m "add a column"   # from a source checkout
    python -m store.migrate --url postgresql+psycopg://... upgrade head

On PostgreSQL, concurrent upgrades (several workers starting together) are serialised by an advisory
lock, and the whole upgrade is one transaction.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import CommandLine, Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from store.engine import make_engine, redact, writer

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: `pg_advisory_xact_lock` key held while migrating (any constant unlikely to clash; "triage" in hex).
MIGRATION_LOCK_KEY = 0x747269616765


def alembic_config(url: str | URL | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for the store: scripts in `store/migrations`, database from the arguments.

    With `connection`, migrations run on it (inside its transaction); otherwise `env.py` connects to
    `url`, or to `TRIAGE_DATABASE_URL` / the settings' default when `url` is None.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    # Passed as attributes, not main options: a URL's password may contain `%`, which ini-style
    # interpolation would misread.
    if url is not None:
        cfg.attributes["url"] = url
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest revision the shipped migrations define."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _upgrade(engine: Engine, revision: str) -> str | None:
    with writer(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        command.upgrade(alembic_config(connection=connection), revision)
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(url: str | URL | Engine, revision: str = "head") -> str | None:
    """Bring the database to `revision` (default: the newest) and return the revision it is at.

    Idempotent: an up-to-date database is left as it is. Takes a URL (a short-lived engine is made and
    disposed) or an existing engine.
    """
    if isinstance(url, Engine):
        at = _upgrade(url, revision)
        where = redact(url.url)
    else:
        engine = make_engine(url, poolclass=NullPool)
        try:
            at = _upgrade(engine, revision)
        finally:
            engine.dispose()
        where = redact(url)
    logger.info("store database %s is at revision %s", where, at)
    return at


def downgrade_database(url: str | URL | Engine, revision: str) -> str | None:
    """Step the schema back to `revision` ("base" drops every table). For development and tests."""
    engine = url if isinstance(url, Engine) else make_engine(url, poolclass=NullPool)
    try:
        with writer(engine).begin() as connection:
            command.downgrade(alembic_config(connection=connection), revision)
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Alembic's own command line (upgrade, downgrade, current, history, revision...) on the store."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--url", default=None, help="database URL (default: TRIAGE_DATABASE_URL or settings)")
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    cli = CommandLine(prog="python -m store.migrate [--url URL]")
    options = cli.parser.parse_args(rest)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(url=known.url), options)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
