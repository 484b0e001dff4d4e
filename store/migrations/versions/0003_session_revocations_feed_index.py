"""Revoked reviewer-page sessions, and an index on the hot-issue feed's case row.

`web_session_revocations`: logging out records the session's id (append-only, like the rest of the store:
the serving role may only SELECT and INSERT), and every page request refuses a revoked session, on every
replica. `ix_hotspot_feed_case_row_id`: the feed read joins cases by this column under the feed lock;
without it, stale statistics led PostgreSQL to scan the whole cases table per case.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTC_TIME = sa.DateTime(timezone=True)

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_session_revocations",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_web_session_revocations")),
    )
    op.create_index(op.f("ix_hotspot_feed_case_row_id"), "hotspot_feed", ["case_row_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_hotspot_feed_case_row_id"), table_name="hotspot_feed")
    op.drop_table("web_session_revocations")
