"""The audit store's tables, as SQLAlchemy 2.0 typed ORM classes.

The schema is owned by the Alembic migrations in `store/migrations/versions/`; these classes describe
it for queries and for `alembic revision --autogenerate`, and a test checks that the two agree. Nothing
here creates tables (no `create_all` outside tests of the migrations themselves).

Every table is append-only: rows are inserted and read, never updated in place or deleted. A re-score
is a new prediction pointing at the one it supersedes; a changed text is a new `cases` row version.
Two exceptions hold current state, each with an append-only history beside it: a `warnings` row (its
status, level and escalation change; every change is a `warning_events` row written in the same
transaction) and an `outbox` row (its delivery state; the event it carries never changes).

Times are stored in UTC and read back as timezone-aware UTC datetimes on every backend (SQLite has no
time-zone type, so `UTCDateTime` converts on the way in and out).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names are derived, not left to each backend, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Surrogate keys: 64-bit on PostgreSQL; SQLite only auto-increments an `INTEGER PRIMARY KEY`.
BigId = BigInteger().with_variant(Integer(), "sqlite")
#: JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
Json = JSON().with_variant(JSONB(), "postgresql")

# Column sizes. Ids from the ticket system follow the request schema's limits (`serving.schemas`).
CASE_ID_LEN = 64
REPORTER_LEN = 64
CHANNEL_LEN = 32
HASH_LEN = 64  # sha256, hex
NAME_LEN = 256
VERSION_LEN = 64
LABEL_LEN = 128
LEVEL_LEN = 16
KEY_LEN = 128  # burst and alert ids, made by the hot-issue detector


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is taken to be UTC already (normalise local times before)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (`timestamptz` on PostgreSQL)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        # SQLite stores text without an offset: write UTC wall time so comparisons and sorting hold.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Case(Base):
    """One version of a case's text. A changed text under the same `case_id` is a new row."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("case_id", "text_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LEN), index=True)
    text_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reporter_id: Mapped[str | None] = mapped_column(String(REPORTER_LEN))
    channel: Mapped[str | None] = mapped_column(String(CHANNEL_LEN))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Prediction(Base):
    """One model output for one case version. A re-score links the prediction it supersedes.

    `supersedes_id` is unique: each prediction is superseded at most once, so a case's predictions
    form one chain, oldest to newest.
    """

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("supersedes_id"),
        Index("ix_predictions_case_id_id", "case_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_row_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LEN))
    model_name: Mapped[str] = mapped_column(String(NAME_LEN))
    model_version: Mapped[str | None] = mapped_column(String(VERSION_LEN))
    department: Mapped[str] = mapped_column(String(LABEL_LEN))
    department_confidence: Mapped[float] = mapped_column(Float)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    top: Mapped[Any] = mapped_column(Json)
    risk_level: Mapped[str | None] = mapped_column(String(LEVEL_LEN))
    risk_probabilities: Mapped[Any | None] = mapped_column(Json)
    reasons: Mapped[Any | None] = mapped_column(Json)
    hot_issue_id: Mapped[str | None] = mapped_column(String(KEY_LEN))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    supersedes_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("predictions.id"))


class Review(Base):
    """A reviewer's decision on one prediction (issue 4). Later decisions are new rows."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LEN), index=True)
    prediction_id: Mapped[int] = mapped_column(BigId, ForeignKey("predictions.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(NAME_LEN))
    decided_department: Mapped[str | None] = mapped_column(String(LABEL_LEN))
    decided_level: Mapped[str | None] = mapped_column(String(LEVEL_LEN))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ReviewClaim(Base):
    """A reviewer taking a case ("claim") or letting it go ("release"): the latest row of a case says who
    holds it, until the claim expires (`store.claims`). Rows are only added."""

    __tablename__ = "review_claims"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LEN), index=True)
    reviewer: Mapped[str] = mapped_column(String(NAME_LEN))
    action: Mapped[str] = mapped_column(String(LEVEL_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class HotspotMember(Base):
    """A case joining a burst, with what the detector needs to replay it (`payload`)."""

    __tablename__ = "hotspot_members"
    __table_args__ = (UniqueConstraint("burst_id", "case_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    burst_id: Mapped[str] = mapped_column(String(KEY_LEN))
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LEN), index=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    reporter_id: Mapped[str | None] = mapped_column(String(REPORTER_LEN))
    payload: Mapped[Any] = mapped_column(Json)
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class HotspotAlert(Base):
    """An alert the detector raised for a burst; `alert_id` is the detector's id, stored once."""

    __tablename__ = "hotspot_alerts"
    __table_args__ = (Index("ix_hotspot_alerts_burst_id_raised_at", "burst_id", "raised_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(KEY_LEN), unique=True)
    burst_id: Mapped[str] = mapped_column(String(KEY_LEN))
    level: Mapped[str] = mapped_column(String(LEVEL_LEN))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    payload: Mapped[Any] = mapped_column(Json)
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HotspotFeed(Base):
    """One case as the hot-issue detector observed it; every replica replays these in `seq` order.

    Rows are appended under one lock (`store.hotspot_feed`), so `seq` order is intake order and
    replicas that replay the feed hold the same detector state and raise the same alert ids.
    """

    __tablename__ = "hotspot_feed"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_row_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    votes: Mapped[int | None] = mapped_column(Integer)
    inserted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The case's `models.hotspots.CaseTerms` as the intake replica computed them, with their settings' key:
    #: other replicas replay them instead of segmenting the text again. NULL: rows from before they were kept.
    terms: Mapped[Any | None] = mapped_column(Json, nullable=True)


class HotspotSnapshot(Base):
    """The detector's `snapshot()` at one moment; restore = latest snapshot + members inserted after."""

    __tablename__ = "hotspot_snapshots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    detector_version: Mapped[str] = mapped_column(String(VERSION_LEN))
    payload: Mapped[Any] = mapped_column(Json)


class WebSessionRevocation(Base):
    """A reviewer-page session ended by logging out: its cookie is refused from then on, on every replica."""

    __tablename__ = "web_session_revocations"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())


WARNING_NUMBER_LEN = 32
DISTRICT_LEN = 64
EVENT_ID_LEN = 36  # a UUID, as text


class EarlyWarning(Base):
    """A warning (预警单) on a case or a hot-issue alert, and where it stands now.

    One per source (`source_kind` "case" or "alert", `source_id` the case id or alert id): a re-score or a
    reviewer's change updates it. Its history is `warning_events`; nothing here is ever deleted.
    """

    __tablename__ = "warnings"
    __table_args__ = (
        UniqueConstraint("year", "seq"),
        UniqueConstraint("source_kind", "source_id"),
        Index("ix_warnings_status_level", "status", "level"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(WARNING_NUMBER_LEN), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    source_kind: Mapped[str] = mapped_column(String(LEVEL_LEN))
    source_id: Mapped[str] = mapped_column(String(KEY_LEN))
    case_id: Mapped[str | None] = mapped_column(String(CASE_ID_LEN), index=True)
    alert_id: Mapped[str | None] = mapped_column(String(KEY_LEN))
    level: Mapped[str] = mapped_column(String(LEVEL_LEN))
    department: Mapped[str] = mapped_column(String(LABEL_LEN), index=True)
    district: Mapped[str] = mapped_column(String(DISTRICT_LEN), index=True)
    reasons: Mapped[Any] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(LEVEL_LEN))
    escalation_level: Mapped[int] = mapped_column(Integer)
    acknowledge_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolve_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the sweep raised the supervision notice for each deadline (once per deadline: idempotent).
    acknowledge_overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolve_overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    policy_version: Mapped[str] = mapped_column(String(VERSION_LEN))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WarningEvent(Base):
    """One step in a warning's life (issued, acknowledged, resolved, withdrawn, updated, supervised).

    Append-only: written in the transaction that changed the warning."""

    __tablename__ = "warning_events"
    __table_args__ = (Index("ix_warning_events_warning_id_id", "warning_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    warning_id: Mapped[int] = mapped_column(BigId, ForeignKey("warnings.id"))
    kind: Mapped[str] = mapped_column(String(LEVEL_LEN))
    actor: Mapped[str] = mapped_column(String(NAME_LEN))
    note: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[Any] = mapped_column(Json)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OutboxEvent(Base):
    """An event for the webhook subscribers, written in the transaction that caused it (transactional outbox).

    `state`: pending (due at `next_attempt_at`, which a worker's claim also pushes forward as a lease),
    delivered (every subscriber took it), dead (gave up after the configured attempts; an admin may
    requeue it). `delivered_to` names the subscribers that already took it, so a retry skips them."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LEN), unique=True)
    event_type: Mapped[str] = mapped_column(String(LABEL_LEN))
    payload: Mapped[Any] = mapped_column(Json)
    state: Mapped[str] = mapped_column(String(LEVEL_LEN))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(EVENT_ID_LEN))
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_to: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
