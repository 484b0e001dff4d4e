"""The hot-issue feed keeps each case's terms, so other replicas replay it without segmenting its text.

Every replica replays every other replica's cases through its own detector; before this column each replay
normalised, segmented and place-matched the case's text again (about 6% of a worker's interpreter time under
50 clients with 2 workers, by py-spy; decoding the stored terms costs about as much, so this buys the
detector reading each text once rather than speed). `terms` holds the intake replica's
`models.hotspots.CaseTerms` with the key of the settings that made them (`models.hotspots.terms_key`); a
replica whose key differs, and rows appended before this revision (NULL), fall back to the text.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hotspot_feed", sa.Column("terms", JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("hotspot_feed", "terms")
