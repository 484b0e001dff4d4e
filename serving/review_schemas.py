"""Request and response bodies of the review API (`serving.review_routes`).

Responses carry case text for reviewers but never a reporter id: the reporter is personal data the
review does not need (hot-issue counts of distinct reporters come from the detector, as numbers).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from serving.review_rules import MAX_NOTE_CHARS
from serving.schemas import AlertSummary, Department, HotIssue, ModelRef, Risk, reject_nul

Level = Literal["red", "yellow", "green"]
MAX_QUEUE_LIMIT = 200


def _date_or_datetime(value: Any) -> Any:
    """A bare `YYYY-MM-DD` is a whole day (a date); anything longer is a moment (a datetime).

    pydantic's own union would read "2026-11-27T00:00:00" as a date and "2026-11-27" as a datetime
    depending on the order; a day and a moment bound a range differently, so decide by the text.
    """
    if isinstance(value, str):
        text = value.strip()
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    return value


#: Query value: a day (`2026-11-27`, UTC) or an ISO date-time (naive ones are UTC).
DateOrTime = Annotated[date | datetime, BeforeValidator(_date_or_datetime)]


# -- reviews ----------------------------------------------------------------------------------------
class ReviewRequest(BaseModel):
    """A reviewer's decision on a case's prediction. The reviewer is the API key's name, not a field."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "confirm"},
                {"action": "change", "level": "red", "note": "楼道燃气泄漏，随时可能爆炸，应为红色。"},
                {"action": "change", "department": "城乡建设", "note": "房屋质量问题归住建。", "prediction_id": 12},
            ]
        },
    )

    prediction_id: int | None = Field(
        None, ge=1, description="The prediction decided on; default: the case's latest prediction."
    )
    action: Literal["confirm", "change"] = Field(
        description="confirm: the model's department and level are right; change: give the right ones and a note."
    )
    department: str | None = Field(
        None, min_length=1, max_length=128, description="The right department (change); one the model knows."
    )
    level: Level | None = Field(None, description="The right risk level (change).")
    note: str | None = Field(
        None, max_length=MAX_NOTE_CHARS, description="Why (required for change, optional for confirm)."
    )

    @field_validator("department", "note")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return reject_nul(value)


class ReviewOut(BaseModel):
    """A stored review: the decision as it applies (a confirm stores the model's department and level)."""

    id: int
    case_id: str
    prediction_id: int
    reviewer: str = Field(description="Name of the API key that made the review.")
    decided_department: str | None
    decided_level: str | None
    note: str | None
    created_at: datetime


# -- case detail ------------------------------------------------------------------------------------
class CaseVersionOut(BaseModel):
    """One text the case was submitted with (a changed text is a new version)."""

    id: int
    title: str
    body: str
    created_at: datetime | None = Field(description="When the ticket system says the case was made.")
    channel: str | None
    received_at: datetime = Field(description="When this version was first stored.")
    text_hash: str


class PredictionOut(BaseModel):
    """One stored prediction with everything the model said."""

    id: int
    case_version_id: int = Field(description="The version (`versions[].id`) this prediction scored.")
    model: ModelRef
    department: Department
    risk: Risk | None
    hot_issue: HotIssue | None
    hot_issue_id: str | None
    latency_ms: float | None
    created_at: datetime
    supersedes_id: int | None = Field(description="The prediction this one replaced, if any.")


class CaseDetailOut(BaseModel):
    """A case for review: its current text, every version, prediction and review, and its hot issue."""

    case_id: str
    title: str = Field(description="Title of the text the latest prediction scored.")
    body: str
    created_at: datetime | None
    channel: str | None
    received_at: datetime
    pending: bool = Field(description="True while the latest prediction has no review (the case is queued).")
    latest_prediction_id: int | None
    versions: list[CaseVersionOut] = Field(description="Oldest first.")
    predictions: list[PredictionOut] = Field(description="Oldest first; the last is the current one.")
    reviews: list[ReviewOut] = Field(description="Oldest first; append-only.")
    alert: AlertSummary | None = Field(description="The current alert of the burst the case belongs to, if any.")
    hot_issue_id: str | None = Field(description="The burst named by the latest prediction.")
    burst_case_ids: list[str] = Field(description="The burst's other cases, in the order they were observed.")


# -- queue ------------------------------------------------------------------------------------------
class QueueItemOut(BaseModel):
    case_id: str
    prediction_id: int
    title: str
    body_preview: str = Field(description="The first 120 characters of the body.")
    received_at: datetime
    case_created_at: datetime | None
    department: str
    department_confidence: float
    needs_review: bool
    risk_level: str | None
    hot_issue_id: str | None
    priority: Literal["red", "yellow", "review", "other"] = Field(
        description="red / yellow risk, review = low-confidence route (needs_review), other = the rest."
    )
    claimed_by: str | None = Field(None, description="The reviewer working on this case (a live claim), if any.")
    claimed_until: datetime | None = Field(None, description="When that claim lapses unless renewed.")


class ClaimOut(BaseModel):
    case_id: str
    reviewer: str
    claimed_at: datetime
    expires_at: datetime


class ReleaseOut(BaseModel):
    case_id: str
    released: bool = Field(description="False: the caller did not hold the case (nothing changed).")


#: Row ids are 64-bit signed integers in both databases.
MAX_ROW_ID = 2**63 - 1


class BulkConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(
        min_length=1, max_length=200, description="Predictions to confirm, as the queue listed them.")


class BulkSkipped(BaseModel):
    prediction_id: int
    case_id: str | None
    reason: Literal["not_pending", "claimed_by_another_reviewer"] = Field(
        description="not_pending: reviewed meanwhile, superseded by a new prediction, or unknown.")
    claimed_by: str | None = None


class BulkConfirmOut(BaseModel):
    confirmed: list[ReviewOut]
    skipped: list[BulkSkipped]


class QueueCounts(BaseModel):
    red: int
    yellow: int
    review: int
    other: int
    total: int


class ReviewQueueOut(BaseModel):
    items: list[QueueItemOut] = Field(description="Red, yellow, low-confidence, other; oldest first within each.")
    counts: QueueCounts = Field(description="Pending cases per priority under the same filters (all pages).")
    limit: int
    offset: int


# -- agreement report -------------------------------------------------------------------------------
class AgreementOverallOut(BaseModel):
    reviewed: int = Field(description="Cases with a review in the window (each counted once, by its latest).")
    agreed_department: int
    agreed_level: int
    department_agreement: float | None = Field(description="agreed_department / reviewed; null without reviews.")
    level_agreement: float | None


class DepartmentAgreementOut(BaseModel):
    department: str = Field(description="The department the model predicted.")
    reviewed: int
    agreed: int
    rate: float | None


class LevelAgreementOut(BaseModel):
    level: str = Field(description='The level the model predicted ("none": no risk model).')
    reviewed: int
    agreed: int
    rate: float | None


class WeekAgreementOut(BaseModel):
    week: str = Field(description="ISO week of the review (UTC).", examples=["2026-W48"])
    reviewed: int
    department_agreement: float | None
    level_agreement: float | None


class MissedRedOut(BaseModel):
    case_id: str
    predicted_level: str | None
    reviewer: str
    reviewed_at: datetime
    prediction_id: int
    review_id: int


class AgreementReportOut(BaseModel):
    """Model vs reviewer, over each case's latest review in the window and the prediction it judged."""

    since: datetime | None
    until: datetime | None
    overall: AgreementOverallOut
    by_department: list[DepartmentAgreementOut] = Field(description="Most reviewed first.")
    by_level: list[LevelAgreementOut] = Field(description="red, yellow, green.")
    level_confusion: dict[str, dict[str, int]] = Field(
        description="Cases by model level (outer key) and reviewer level (inner key)."
    )
    by_week: list[WeekAgreementOut] = Field(description="Oldest week first.")
    missed_red: list[MissedRedOut] = Field(description="Cases the reviewer made red where the model did not.")
