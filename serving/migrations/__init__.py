"""Alembic migrations of the audit store (run them with `serving.store.migrate.upgrade_database`)."""
