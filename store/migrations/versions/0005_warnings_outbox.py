"""Warnings (预警单), their append-only events, and the webhook outbox (issue 16).

A warning row holds where it stands now (status, level, escalation); every change to it is a
`warning_events` row and, when subscribers must hear of it, an `outbox` row, all in one transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "warnings",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("alert_id", sa.String(128), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("department", sa.String(128), nullable=False),
        sa.Column("district", sa.String(64), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("acknowledge_due", UTC_TIME, nullable=True),
        sa.Column("resolve_due", UTC_TIME, nullable=True),
        sa.Column("acknowledge_overdue_at", UTC_TIME, nullable=True),
        sa.Column("resolve_overdue_at", UTC_TIME, nullable=True),
        sa.Column("acknowledged_at", UTC_TIME, nullable=True),
        sa.Column("closed_at", UTC_TIME, nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("issued_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warnings")),
        sa.UniqueConstraint("number", name=op.f("uq_warnings_number")),
        sa.UniqueConstraint("year", "seq", name=op.f("uq_warnings_year_seq")),
        sa.UniqueConstraint("source_kind", "source_id", name=op.f("uq_warnings_source_kind_source_id")),
    )
    op.create_index(op.f("ix_warnings_case_id"), "warnings", ["case_id"])
    op.create_index(op.f("ix_warnings_department"), "warnings", ["department"])
    op.create_index(op.f("ix_warnings_district"), "warnings", ["district"])
    op.create_index(op.f("ix_warnings_issued_at"), "warnings", ["issued_at"])
    op.create_index("ix_warnings_status_level", "warnings", ["status", "level"])

    op.create_table(
        "warning_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("warning_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["warning_id"], ["warnings.id"], name=op.f("fk_warning_events_warning_id_warnings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_events")),
    )
    op.create_index("ix_warning_events_warning_id_id", "warning_events", ["warning_id", "id"])
    op.create_index(op.f("ix_warning_events_at"), "warning_events", ["at"])

    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=False),
        sa.Column("claim_token", sa.String(36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_to", JSON, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("delivered_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])
    op.create_index(op.f("ix_outbox_created_at"), "outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_created_at"), table_name="outbox")
    op.drop_index("ix_outbox_state_next_attempt_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_warning_events_at"), table_name="warning_events")
    op.drop_index("ix_warning_events_warning_id_id", table_name="warning_events")
    op.drop_table("warning_events")
    op.drop_index("ix_warnings_status_level", table_name="warnings")
    op.drop_index(op.f("ix_warnings_issued_at"), table_name="warnings")
    op.drop_index(op.f("ix_warnings_district"), table_name="warnings")
    op.drop_index(op.f("ix_warnings_department"), table_name="warnings")
    op.drop_index(op.f("ix_warnings_case_id"), table_name="warnings")
    op.drop_table("warnings")
