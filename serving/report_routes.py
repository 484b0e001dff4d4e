"""GET /v1/reports/drift: does served traffic still look like what the model was trained for (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from serving.dependencies import AdminDep, ModelDep, StoreDep
from serving.drift_report import NoReferenceError, drift_report
from serving.review_routes import INVALID, SinceQuery, UntilQuery, _bounds
from serving.routes import NO_MODEL
from serving.schemas import ErrorResponse, ModelRef

report_router = APIRouter(tags=["reports"])


class DriftFigure(BaseModel):
    name: Literal["department_mix", "risk_mix", "confidence", "text_length", "vocabulary", "new_terms", "place_share"]
    label: str = Field(description="The figure's name in Chinese, as the dashboard shows it.")
    state: Literal["ok", "watch", "drift"]
    statistic: float | None = Field(
        description="PSI (distributions), rise of the unseen-token share (vocabulary), or the widest new term's "
        "share of cases (new_terms)."
    )
    detail: dict[str, Any] = Field(description="What the statistic is made of: shares, moved departments, terms.")
    sentence: str | None = Field(description="One plain Chinese sentence when the state is watch or drift.")


class WeekFigures(BaseModel):
    week: str = Field(examples=["2026-W49"])
    n_cases: int
    enough_cases: bool
    figures: dict[str, dict[str, Any]] = Field(description="Per figure: state and statistic in this week alone.")


class ReferenceSummary(BaseModel):
    n_cases: int = Field(description="Held-out cases the reference profile was made from.")
    trained_at: str | None


class Results(BaseModel):
    by_week: list[dict[str, Any]]
    by_department: list[dict[str, Any]]


class DriftReport(BaseModel):
    since: datetime | None
    until: datetime | None
    model: ModelRef
    reference: ReferenceSummary
    thresholds_version: int
    min_cases: int = Field(description="Fewer cases than this in a window or week: its states stay ok.")
    n_cases: int
    truncated: bool = Field(description="The window held more predictions than a report reads; the newest were.")
    enough_cases: bool
    flagged: list[str] = Field(description="Figures whose state is watch or drift.")
    figures: list[DriftFigure]
    weeks: list[WeekFigures]
    results: Results = Field(
        description="From reviews, by the week the prediction was made and by department: auto-routing coverage "
        "and precision, red recall."
    )


@report_router.get(
    "/v1/reports/drift",
    response_model=DriftReport,
    summary="Served traffic against the model's training profile (drift), by week, with reviewed results",
    responses={
        **INVALID, **NO_MODEL,
        status.HTTP_409_CONFLICT: {"model": ErrorResponse, "description": "The model has no reference profile."},
    },
)
def drift(
    principal: AdminDep, store: StoreDep, model: ModelDep, since: SinceQuery = None, until: UntilQuery = None
) -> DriftReport:
    """Predictions made in the window (on prediction time) are profiled as the training reference was and
    compared figure by figure: ok / watch / drift by the thresholds in `models/defaults/drift.yaml`, with a
    Chinese sentence for each flagged figure; the same per ISO week; and, from reviews, auto-routing
    precision and coverage and red recall by week and department."""
    start, end = _bounds(since, until)
    try:
        return DriftReport.model_validate(drift_report(store, model, since=start, until=end))
    except NoReferenceError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
