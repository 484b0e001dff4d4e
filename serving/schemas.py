"""Request and response bodies of the triage API.

The limits here are the hard ceilings (`serving.settings.MAX_TEXT_CHARS`, `MAX_BATCH`); a deployment
may lower them through settings, which the routes then enforce with the same 422 shape.

Responses are built so later issues can add fields per case (`risk`, `hot_issue`) to `CaseTriage`
without changing what existing clients read.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from serving.settings import MAX_BATCH, MAX_TEXT_CHARS

EMPTY_TEXT_MESSAGE = "title and body are both empty: give at least one"
NUL_MESSAGE = "Text must not contain NUL (\\u0000) characters"


#: Case times and date filters outside these bounds are refused (422): a year-9999 claim overflowed the
#: Beijing-time display and, as the hot-issue clock, expired every burst.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
TIME_RANGE_MESSAGE = "must be between 1970-01-01 and 2100-01-01 (UTC)"


def time_in_range(value: datetime) -> bool:
    """Whether a moment (naive = UTC, as the store reads it) lies in [EARLIEST_TIME, LATEST_TIME)."""
    try:
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        return False
    return EARLIEST_TIME <= moment < LATEST_TIME


def check_time_range(value: datetime | None) -> datetime | None:
    if value is not None and not time_in_range(value):
        raise PydanticCustomError("datetime_out_of_range", TIME_RANGE_MESSAGE)
    return value


#: Unicode categories an id may not hold: controls, format characters (zero-width, bidi overrides, BOM),
#: line and paragraph separators, surrogates. An id is shown to reviewers and put in links; these either
#: cannot be typed or make one id look like another.
_ID_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
ID_MESSAGE = (
    "case_id must not be '.' or '..', start or end with a space, or hold control, zero-width or bidi characters"
)


def check_case_id(value: str) -> str:
    """Refuse an id that can never be opened or reviewed, or that looks like another (422).

    Slashes are allowed (``2026/00123`` is a real shape: the case routes take the rest of the path)."""
    if value in (".", "..") or value != value.strip() or any(
        unicodedata.category(ch) in _ID_FORBIDDEN_CATEGORIES for ch in value
    ):
        raise PydanticCustomError("case_id_unusable", ID_MESSAGE)
    return value


def reject_nul(value: str | None) -> str | None:
    """Refuse text with NUL characters as invalid input (422).

    PostgreSQL text cannot hold NUL, so such a value would otherwise fail in the audit store or in a
    lookup and answer 500 (found by fuzzing the API against PostgreSQL).
    """
    if value is not None and "\x00" in value:
        raise PydanticCustomError("nul_character", NUL_MESSAGE)
    return value


#: For path and query parameters: `Annotated[str, Path(...), NulFree]`.
NulFree = AfterValidator(reject_nul)

EXAMPLE_TITLE = "关于临江县鑫隆电子厂拖欠工人三个月工资的投诉"
EXAMPLE_BODY = (
    "我们是临江县鑫隆电子厂的流水线工人，厂里从今年三月起就没有发过工资，共有六十多人被欠薪，"
    "每人被拖欠一万多元。老板一直说资金周转困难，现在已经联系不上。请劳动监察部门尽快介入，帮我们讨回血汗钱。"
)

#: A complete request, shown in the OpenAPI docs (schema and the endpoint's examples).
EXAMPLE_CASE = {
    "case_id": "YC202607150001",
    "title": EXAMPLE_TITLE,
    "body": EXAMPLE_BODY,
    "created_at": "2026-07-15T09:30:00+08:00",
    "reporter_id": "U20417",
    "channel": "12345热线",
}


class TriageRequest(BaseModel):
    """One grievance case as the ticket system sends it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [EXAMPLE_CASE]
        },
    )

    case_id: str = Field(
        min_length=1,
        max_length=64,
        description="The ticket system's id of the case.",
        examples=["YC202607150001"],
    )
    title: str = Field(
        "",
        max_length=MAX_TEXT_CHARS,
        description="Title of the grievance. May be empty if the body is not.",
        examples=[EXAMPLE_TITLE],
    )
    body: str = Field(
        "",
        max_length=MAX_TEXT_CHARS,
        description="Full text of the grievance. May be empty if the title is not.",
        examples=[EXAMPLE_BODY],
    )
    created_at: datetime | None = Field(
        None,
        description=(
            "When the case was filed (ISO 8601; naive = UTC), between 1970-01-01 and 2100-01-01. The client's "
            "claim, stored as given; hot-issue windows use the earlier of it and the time the service received "
            "the case, so a case dated ahead cannot move the detector's clock."
        ),
        examples=["2026-07-15T09:30:00+08:00"],
    )
    reporter_id: str | None = Field(
        None, max_length=64, description="Pseudonymous id of the reporter.", examples=["U20417"]
    )
    channel: str | None = Field(
        None,
        max_length=32,
        description="Where the case came in (hotline, web, mailbox...).",
        examples=["12345热线"],
    )

    @field_validator("case_id", "title", "body", "reporter_id", "channel")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return reject_nul(value)

    @field_validator("case_id")
    @classmethod
    def _usable_id(cls, value: str) -> str:
        return check_case_id(value)

    @field_validator("created_at")
    @classmethod
    def _sane_time(cls, value: datetime | None) -> datetime | None:
        return check_time_range(value)

    @model_validator(mode="after")
    def _some_text(self) -> TriageRequest:
        if not self.title.strip() and not self.body.strip():
            raise PydanticCustomError("empty_text", EMPTY_TEXT_MESSAGE)
        return self


class BatchRequest(BaseModel):
    """Several cases routed in one call; case ids must be unique within the batch."""

    model_config = ConfigDict(extra="forbid")

    cases: list[TriageRequest] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} cases, each with a unique case_id."
    )

    @field_validator("cases")
    @classmethod
    def _unique_ids(cls, cases: list[TriageRequest]) -> list[TriageRequest]:
        seen: set[str] = set()
        for case in cases:
            if case.case_id in seen:
                raise PydanticCustomError(
                    "duplicate_case_id",
                    "case_id {case_id} appears more than once in the batch",
                    {"case_id": case.case_id},
                )
            seen.add(case.case_id)
        return cases


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class DepartmentScore(BaseModel):
    label: str = Field(description="A department the router knows.", examples=["劳动和社会保障"])
    probability: Probability = Field(description="Calibrated probability of this department.")


class Department(BaseModel):
    """Where the case should go, and whether a person should check it first."""

    label: str = Field(description="The most probable department.", examples=["劳动和社会保障"])
    confidence: Probability = Field(description="Calibrated probability of `label`.", examples=[0.93])
    top: list[DepartmentScore] = Field(
        description="The three most probable departments, most probable first."
    )
    needs_review: bool = Field(
        description="True when the confidence is below the department's threshold chosen at training time, or "
        "the case is unlike every known department (see review_reason)."
    )
    review_reason: Literal["low_confidence", "out_of_taxonomy"] | None = Field(
        None,
        description="Why a person must check the route: low_confidence (below the department's threshold) or "
        "out_of_taxonomy (the case is unlike every known department; routed to the closest one).",
    )


class ModelRef(BaseModel):
    """Which model produced a prediction."""

    name: str | None = Field(description="Registered model name.", examples=["grievance-triage"])
    version: str | None = Field(description="Registered model version.", examples=["3"])


class RiskReason(BaseModel):
    """Why the case got its level: a model feature (in words) or a cue phrase found in the text."""

    kind: Literal["criterion", "model", "cue", "rule"] = Field(
        description="criterion: the rubric criterion the case meets, with its phrases (first for red and yellow); "
        "model: a feature the risk model weighed; cue: a phrase of the text; rule: the safety floor lifted the level."
    )
    text: str = Field(description="For a reviewer: the feature in words, or the phrase as written.")
    feature: str | None = Field(None, description="Model feature name (kind model).")
    value: float | None = Field(None, description="The feature's value for this case (kind model).")
    weight: float | None = Field(None, description="Contribution toward the level, in log-odds (kind model).")
    criterion: str | None = Field(None, description="Rubric criterion of a cue, e.g. red-1.", examples=["red-3"])
    category: str | None = Field(
        None, description="Lexicon category of a cue, e.g. gas_leak, or learned: a phrase the text model weighed."
    )
    start: int | None = Field(None, description="Offset of the phrase in the normalised title。body text.")
    end: int | None = None


class Risk(BaseModel):
    """How soon and how closely the case must be handled (red / yellow / green), and why."""

    level: Literal["red", "yellow", "green"]
    probabilities: dict[str, Probability] = Field(description="Probability of each level.")
    reasons: list[RiskReason] = Field(
        description="For red and yellow: the rubric criterion and its phrases first, then the other phrases, then "
        "model features (strongest first)."
    )


class HotIssue(BaseModel):
    """The burst of similar cases from different people that this case joined."""

    id: str = Field(description="Burst id. Once `level` is set, GET /v1/alerts/{id} gives its latest alert.")
    level: Literal["red", "yellow"] | None = Field(description="Highest alert level the burst reached, if any.")
    cases: int = Field(description="Cases in the burst within the window, this one included.")
    reporters: int = Field(description="Distinct reporters among them.")


class CaseTriage(BaseModel):
    """The triage of one case."""

    case_id: str
    department: Department
    risk: Risk | None = Field(None, description="Absent only when the loaded model has no risk model.")
    hot_issue: HotIssue | None = Field(None, description="Present when the case joined a burst of similar cases.")
    prediction_id: int | None = Field(
        None,
        description="Audit-trail id of this prediction. Null while the database is unreachable: the prediction "
        "was accepted and spooled to local disk, and is stored (once) when the database returns.",
    )
    stored_at: datetime | None = Field(
        None, description="When the prediction was first stored; null when it was spooled (see prediction_id)."
    )


class TriageResponse(CaseTriage):
    model: ModelRef


class BatchResponse(BaseModel):
    results: list[CaseTriage] = Field(description="One result per case, in request order.")
    model: ModelRef


class ModelInfo(BaseModel):
    """What is loaded: identity, provenance and the headline metrics from held-out evaluation."""

    name: str | None
    version: str | None
    alias: str | None = Field(description="Registry alias the model was loaded by, e.g. champion.")
    uri: str = Field(description="Where the model was loaded from.")
    run_id: str | None = Field(description="MLflow run that trained the model.")
    trained_at: str | None
    classes: list[str] = Field(description="Departments the router chooses from.")
    target_precision: float | None = Field(description="Precision the review thresholds were chosen for.")
    metrics: dict[str, float | None] = Field(description="Held-out metrics logged at training time.")
    text_pipeline_version: str | None = None


class AlertSummary(BaseModel):
    """A hot-issue alert: a burst of similar cases from several people crossed a threshold."""

    id: str = Field(description="Alert id (burst id and level).")
    burst_id: str
    level: Literal["red", "yellow"]
    raised_at: datetime = Field(description="Time of the case that made the burst cross the threshold.")
    reason: str | None = Field(None, description="Which threshold was crossed.")
    place: str | None = Field(None, description="The place most member cases name.")
    keywords: list[str]
    cases: int = Field(description="Cases in the burst when the alert was raised.")
    reporters: int = Field(description="Distinct reporters when the alert was raised.")
    first_case_id: str | None = None
    last_case_id: str | None = None


class AlertMember(BaseModel):
    case_id: str
    observed_at: datetime


class TrajectoryPoint(BaseModel):
    date: str = Field(description="Day (UTC).")
    cases: int = Field(description="Member cases that day.")
    cumulative: int = Field(description="Member cases up to and including that day.")


class AlertDetail(AlertSummary):
    member_case_ids: list[str] = Field(description="Members when the alert was raised.")
    members: list[AlertMember] = Field(description="Every case recorded in the burst so far, oldest first.")
    trajectory: list[TrajectoryPoint]
    history: list[AlertSummary] = Field(description="All alerts of this burst, oldest first.")


class AlertList(BaseModel):
    alerts: list[AlertSummary] = Field(description="Each burst's latest alert, newest first.")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    model: ModelRef
    store: str | None = Field(
        None,
        description="Absent when the audit store is healthy; `degraded: N records spooled, database unreachable "
        "since ...` while predictions are kept in the local spool until the database returns (still ready).",
        examples=["degraded: 3 records spooled, database unreachable since 2026-11-27T21:00:00+00:00"],
    )


class ErrorResponse(BaseModel):
    detail: str = Field(
        examples=[
            "no model loaded: FileNotFoundError: ...; train one with `triage train` or set TRIAGE_MODEL_URI"
        ]
    )


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description='Where the problem is, e.g. ["body", "cases", 3, "title"].')
    msg: str = Field(description="The reason, in plain words.")
    type: str
    ctx: dict[str, Any] | None = None


class ValidationErrorResponse(BaseModel):
    error: str = Field(examples=["invalid request"])
    detail: list[ValidationIssue]
