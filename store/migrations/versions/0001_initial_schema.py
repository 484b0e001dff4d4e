"""Initial schema of the audit store: cases, predictions, reviews, hot-issue members, alerts, snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Migrations are frozen: types are spelled out here instead of imported from store.tables.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=True),
        sa.Column("reporter_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("case_id", "text_hash", name=op.f("uq_cases_case_id_text_hash")),
    )
    op.create_index(op.f("ix_cases_case_id"), "cases", ["case_id"])

    op.create_table(
        "predictions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("case_row_id", BIG_ID, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("department", sa.String(length=128), nullable=False),
        sa.Column("department_confidence", sa.Float(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("top", JSON_DOC, nullable=False),
        sa.Column("risk_level", sa.String(length=16), nullable=True),
        sa.Column("risk_probabilities", JSON_DOC, nullable=True),
        sa.Column("reasons", JSON_DOC, nullable=True),
        sa.Column("hot_issue_id", sa.String(length=128), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("supersedes_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(["case_row_id"], ["cases.id"], name=op.f("fk_predictions_case_row_id_cases")),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["predictions.id"], name=op.f("fk_predictions_supersedes_id_predictions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint("supersedes_id", name=op.f("uq_predictions_supersedes_id")),
    )
    op.create_index("ix_predictions_case_id_id", "predictions", ["case_id", "id"])
    op.create_index(op.f("ix_predictions_case_row_id"), "predictions", ["case_row_id"])
    op.create_index(op.f("ix_predictions_created_at"), "predictions", ["created_at"])

    op.create_table(
        "reviews",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("prediction_id", BIG_ID, nullable=False),
        sa.Column("reviewer", sa.String(length=256), nullable=False),
        sa.Column("decided_department", sa.String(length=128), nullable=True),
        sa.Column("decided_level", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"], ["predictions.id"], name=op.f("fk_reviews_prediction_id_predictions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_case_id"), "reviews", ["case_id"])
    op.create_index(op.f("ix_reviews_created_at"), "reviews", ["created_at"])
    op.create_index(op.f("ix_reviews_prediction_id"), "reviews", ["prediction_id"])

    op.create_table(
        "hotspot_members",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("burst_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("observed_at", UTC_TIME, nullable=False),
        sa.Column("reporter_id", sa.String(length=64), nullable=True),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("inserted_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotspot_members")),
        sa.UniqueConstraint("burst_id", "case_id", name=op.f("uq_hotspot_members_burst_id_case_id")),
    )
    op.create_index(op.f("ix_hotspot_members_case_id"), "hotspot_members", ["case_id"])
    op.create_index(op.f("ix_hotspot_members_inserted_at"), "hotspot_members", ["inserted_at"])
    op.create_index(op.f("ix_hotspot_members_observed_at"), "hotspot_members", ["observed_at"])

    op.create_table(
        "hotspot_alerts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("alert_id", sa.String(length=128), nullable=False),
        sa.Column("burst_id", sa.String(length=128), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("raised_at", UTC_TIME, nullable=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("inserted_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotspot_alerts")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_hotspot_alerts_alert_id")),
    )
    op.create_index("ix_hotspot_alerts_burst_id_raised_at", "hotspot_alerts", ["burst_id", "raised_at"])
    op.create_index(op.f("ix_hotspot_alerts_raised_at"), "hotspot_alerts", ["raised_at"])

    op.create_table(
        "hotspot_snapshots",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("detector_version", sa.String(length=64), nullable=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotspot_snapshots")),
    )
    op.create_index(op.f("ix_hotspot_snapshots_created_at"), "hotspot_snapshots", ["created_at"])


def downgrade() -> None:
    # Indexes go with their tables; children before parents.
    for table in ("hotspot_snapshots", "hotspot_alerts", "hotspot_members", "reviews", "predictions", "cases"):
        op.drop_table(table)
