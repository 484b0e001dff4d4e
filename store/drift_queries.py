"""The reads behind the drift and results-over-time reports: served predictions with their case text in
a window, and each reviewed prediction's outcome. Read-only, one `Session` each (see `store.review_queries`).

No table is added for drift: the figures a report needs (tokens, length, place) are computed from the
stored text at report time (`models.drift`), so a change of the figures needs no migration and applies
to past traffic too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from store.tables import Case, Prediction, Review, as_utc


@dataclass(frozen=True, slots=True)
class ServedPrediction:
    """One stored prediction with the text it was made for (the drift report's input)."""

    made_at: datetime
    department: str
    confidence: float
    needs_review: bool
    risk_level: str | None
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class ReviewedOutcome:
    """A case's latest review against the prediction it judged (results over time)."""

    made_at: datetime  # when the reviewed prediction was made: the week it counts in
    department: str
    needs_review: bool
    risk_level: str | None
    decided_department: str  # the reviewer's, or the model's when the review left it standing
    decided_level: str | None


def _window(column: ColumnElement[datetime] | object, since: datetime | None, until: datetime | None) -> list:
    out = []
    if since is not None:
        out.append(column >= as_utc(since))
    if until is not None:
        out.append(column < as_utc(until))
    return out


def served_predictions(
    session: Session, *, since: datetime | None, until: datetime | None, limit: int
) -> tuple[list[ServedPrediction], bool]:
    """Predictions made in [since, until), newest first, at most `limit`; and whether more were left out."""
    query = (
        select(Prediction.created_at, Prediction.department, Prediction.department_confidence,
               Prediction.needs_review, Prediction.risk_level, Case.title, Case.body)
        .join(Case, Case.id == Prediction.case_row_id)
        .where(*_window(Prediction.created_at, since, until))
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(limit + 1)
    )
    rows = [ServedPrediction(as_utc(r[0]), r[1], float(r[2]), bool(r[3]), r[4], r[5] or "", r[6] or "")
            for r in session.execute(query)]
    return rows[:limit], len(rows) > limit


def reviewed_outcomes(session: Session, *, since: datetime | None, until: datetime | None) -> list[ReviewedOutcome]:
    """Each case's latest review of a prediction made in [since, until), with that prediction's outputs.

    The same "latest review per case" rule as the agreement report (`review_queries.agreement_report`);
    an empty decided department or level leaves the model's standing."""
    latest = select(func.max(Review.id).label("id")).group_by(Review.case_id).subquery()
    query = (
        select(Prediction.created_at, Prediction.department, Prediction.needs_review, Prediction.risk_level,
               Review.decided_department, Review.decided_level)
        .join(latest, latest.c.id == Review.id)
        .join(Prediction, Prediction.id == Review.prediction_id)
        .where(*_window(Prediction.created_at, since, until))
    )
    return [
        ReviewedOutcome(as_utc(made), department, bool(needs_review), level, decided_department or department,
                        decided_level or level)
        for made, department, needs_review, level, decided_department, decided_level in session.execute(query)
    ]
