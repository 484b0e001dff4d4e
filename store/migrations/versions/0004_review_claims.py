"""Reviewers' claims on cases: who is working on a case, so others in the queue leave it alone.

`review_claims` is append-only like the rest of the store: a claim and a release are rows; the latest row
of a case says who holds it until the claim expires (`store.claims`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_claims",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_claims")),
    )
    op.create_index(op.f("ix_review_claims_case_id"), "review_claims", ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_review_claims_case_id"), table_name="review_claims")
    op.drop_table("review_claims")
