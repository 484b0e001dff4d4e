"""What the review queries return: frozen dataclasses, built inside the session that read them.

Kept apart from `records.py` so the review API, the reviewer web page and the reports share one
vocabulary (`QueueItem`, `CaseDetail`, `AgreementReport`) without touching the audit trail's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from store.records import AlertRecord, CaseRecord, PredictionRecord, ReviewRecord

Priority = Literal["red", "yellow", "review", "other"]
#: Queue order: red risk first, then yellow, then low-confidence routes (needs_review), then the rest.
PRIORITIES: tuple[Priority, ...] = ("red", "yellow", "review", "other")
LEVELS = ("red", "yellow", "green")
#: Key for "no level" in the level confusion matrix (a model without a risk part).
NO_LEVEL = "none"
BODY_PREVIEW_CHARS = 120


@dataclass(frozen=True)
class QueueItem:
    """One pending case: its latest prediction has no review yet."""

    case_id: str
    prediction_id: int
    title: str
    body_preview: str
    received_at: datetime
    case_created_at: datetime | None
    department: str
    department_confidence: float
    needs_review: bool
    risk_level: str | None
    hot_issue_id: str | None
    priority: Priority


@dataclass(frozen=True)
class CaseDetail:
    """Everything the store holds about one case (reporter ids stay in `versions`; APIs drop them)."""

    case_id: str
    versions: list[CaseRecord]
    predictions: list[PredictionRecord]
    reviews: list[ReviewRecord]
    alert: AlertRecord | None
    burst_case_ids: list[str]

    @property
    def latest_prediction(self) -> PredictionRecord | None:
        return self.predictions[-1] if self.predictions else None

    @property
    def latest_review(self) -> ReviewRecord | None:
        return self.reviews[-1] if self.reviews else None

    @property
    def latest_version(self) -> CaseRecord | None:
        """The version the latest prediction scored (a text may come back after a change)."""
        latest = self.latest_prediction
        if latest is not None:
            for version in self.versions:
                if version.id == latest.case_row_id:
                    return version
        return self.versions[-1] if self.versions else None

    @property
    def pending(self) -> bool:
        """True while the latest prediction has no review (the case is in the queue)."""
        latest = self.latest_prediction
        return latest is not None and not any(r.prediction_id == latest.id for r in self.reviews)


@dataclass(frozen=True)
class AgreementOverall:
    reviewed: int
    agreed_department: int
    agreed_level: int
    department_agreement: float | None
    level_agreement: float | None


@dataclass(frozen=True)
class DepartmentAgreement:
    """Reviewed cases the model routed to `department`, and how many the reviewer left there."""

    department: str
    reviewed: int
    agreed: int
    rate: float | None


@dataclass(frozen=True)
class LevelAgreement:
    """Reviewed cases the model gave `level` ("none" without a risk model), and how many kept it."""

    level: str
    reviewed: int
    agreed: int
    rate: float | None


@dataclass(frozen=True)
class WeekAgreement:
    """Agreement among cases whose latest review fell in ISO week `week` (UTC), e.g. "2026-W48"."""

    week: str
    reviewed: int
    department_agreement: float | None
    level_agreement: float | None


@dataclass(frozen=True)
class MissedRed:
    """A case the reviewer decided is red while the model said something else."""

    case_id: str
    predicted_level: str | None
    reviewer: str
    reviewed_at: datetime
    prediction_id: int
    review_id: int


@dataclass(frozen=True)
class AgreementReport:
    """Model vs reviewer, over each case's latest review and the prediction that review judged.

    `level_confusion[model_level][reviewer_level]` counts cases; levels are red/yellow/green, and "none"
    for a prediction made without a risk model.
    """

    overall: AgreementOverall
    by_department: list[DepartmentAgreement]
    by_level: list[LevelAgreement]
    level_confusion: dict[str, dict[str, int]]
    by_week: list[WeekAgreement]
    missed_red: list[MissedRed]
    since: datetime | None = None
    until: datetime | None = None


def rate(agreed: int, reviewed: int) -> float | None:
    return agreed / reviewed if reviewed else None
