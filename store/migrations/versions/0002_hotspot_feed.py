"""The hot-issue feed: one row per case observed by the detector, in the order every replica replays.

Several API replicas share one hot-issue state by replaying this feed (see serving/hotspot_service.py);
`seq` is appended under one lock, so its order is the order the cases were observed in.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hotspot_feed",
        sa.Column("seq", BIG_ID, nullable=False),
        sa.Column("case_row_id", BIG_ID, nullable=False),
        sa.Column("observed_at", UTC_TIME, nullable=False),
        sa.Column("votes", sa.Integer(), nullable=True),
        sa.Column("inserted_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["case_row_id"], ["cases.id"], name=op.f("fk_hotspot_feed_case_row_id_cases")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_hotspot_feed")),
    )


def downgrade() -> None:
    op.drop_table("hotspot_feed")
