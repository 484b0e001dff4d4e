"""Alembic migrations of the audit store (run them with `store.migrate.upgrade_database`)."""
