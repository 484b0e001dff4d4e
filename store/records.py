"""What goes into the store and what comes out: plain frozen dataclasses, never live ORM rows.

Records are built inside the session that read them, so callers can use them after it has closed,
from any thread, and cannot change a stored row through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.tables import (
    Case,
    HotspotAlert,
    HotspotMember,
    HotspotSnapshot,
    Prediction,
    Review,
    as_utc,
    utcnow,
)


# -- inputs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseInput:
    """A case as the ticket system sent it. Naive datetimes are taken as UTC."""

    case_id: str
    title: str
    body: str
    created_at: datetime | None = None
    reporter_id: str | None = None
    channel: str | None = None
    received_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class PredictionInput:
    """What the model said about one case, and which model said it.

    `top` is JSON: a list of `{"label": ..., "probability": ...}` objects (or `[label, probability]`
    pairs). `risk_probabilities` and `reasons` are JSON too; `None` where the model has no risk part.
    """

    model_name: str
    model_version: str | None
    department: str
    department_confidence: float
    needs_review: bool
    top: Any
    risk_level: str | None = None
    risk_probabilities: Any = None
    reasons: Any = None
    hot_issue_id: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class PendingPrediction:
    """A case's prediction to store in an open transaction, as `Store.record_case_and_prediction` would
    (the hot-issue feed's intake stores a group of them at once)."""

    case: CaseInput
    prediction: PredictionInput
    rescore: bool = False
    made_at: datetime | None = None


# -- outputs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictionRecord:
    id: int
    case_row_id: int
    case_id: str
    model_name: str
    model_version: str | None
    department: str
    department_confidence: float
    needs_review: bool
    top: Any
    risk_level: str | None
    risk_probabilities: Any
    reasons: Any
    hot_issue_id: str | None
    latency_ms: float | None
    created_at: datetime
    supersedes_id: int | None
    text_hash: str
    #: True when this call stored the prediction; False when an earlier one was returned (idempotent).
    #: Not part of equality: the same stored prediction compares equal however it was obtained.
    is_new: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, row: Prediction, text_hash: str, *, is_new: bool = False) -> PredictionRecord:
        return cls(
            id=row.id,
            case_row_id=row.case_row_id,
            case_id=row.case_id,
            model_name=row.model_name,
            model_version=row.model_version,
            department=row.department,
            department_confidence=row.department_confidence,
            needs_review=row.needs_review,
            top=row.top,
            risk_level=row.risk_level,
            risk_probabilities=row.risk_probabilities,
            reasons=row.reasons,
            hot_issue_id=row.hot_issue_id,
            latency_ms=row.latency_ms,
            created_at=as_utc(row.created_at),
            supersedes_id=row.supersedes_id,
            text_hash=text_hash,
            is_new=is_new,
        )


@dataclass(frozen=True)
class CaseRecord:
    id: int
    case_id: str
    text_hash: str
    title: str
    body: str
    created_at: datetime | None
    reporter_id: str | None
    channel: str | None
    received_at: datetime

    @classmethod
    def of(cls, row: Case) -> CaseRecord:
        return cls(
            id=row.id,
            case_id=row.case_id,
            text_hash=row.text_hash,
            title=row.title,
            body=row.body,
            created_at=row.created_at,
            reporter_id=row.reporter_id,
            channel=row.channel,
            received_at=row.received_at,
        )


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    case_id: str
    prediction_id: int
    reviewer: str
    decided_department: str | None
    decided_level: str | None
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Review) -> ReviewRecord:
        return cls(
            id=row.id,
            case_id=row.case_id,
            prediction_id=row.prediction_id,
            reviewer=row.reviewer,
            decided_department=row.decided_department,
            decided_level=row.decided_level,
            note=row.note,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class MemberRecord:
    id: int
    burst_id: str
    case_id: str
    observed_at: datetime
    reporter_id: str | None
    payload: Any
    inserted_at: datetime

    @classmethod
    def of(cls, row: HotspotMember) -> MemberRecord:
        return cls(
            id=row.id,
            burst_id=row.burst_id,
            case_id=row.case_id,
            observed_at=row.observed_at,
            reporter_id=row.reporter_id,
            payload=row.payload,
            inserted_at=row.inserted_at,
        )


@dataclass(frozen=True)
class AlertRecord:
    id: int
    alert_id: str
    burst_id: str
    level: str
    raised_at: datetime
    payload: Any
    inserted_at: datetime

    @classmethod
    def of(cls, row: HotspotAlert) -> AlertRecord:
        return cls(
            id=row.id,
            alert_id=row.alert_id,
            burst_id=row.burst_id,
            level=row.level,
            raised_at=row.raised_at,
            payload=row.payload,
            inserted_at=row.inserted_at,
        )


@dataclass(frozen=True)
class SnapshotRecord:
    id: int
    created_at: datetime
    detector_version: str
    payload: Any

    @classmethod
    def of(cls, row: HotspotSnapshot) -> SnapshotRecord:
        return cls(id=row.id, created_at=row.created_at, detector_version=row.detector_version, payload=row.payload)
