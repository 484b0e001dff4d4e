"""Reviewed cases for retraining: each case's latest review, with the text and prediction it judged.

`triage export-reviews` and `triage promote` read the audit store through `reviewed_cases` only. A
review names the prediction it judged, and that prediction names the case *version* (text) it scored,
so a case whose text changed after the review is exported with the text the reviewer actually saw.

Reporter ids are deliberately not part of `ReviewedCase`: labels train models, and no feature may score
a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from store.repository import Store
from store.tables import Case, Prediction, Review, as_utc


@dataclass(frozen=True)
class ReviewedCase:
    """One reviewed case: the reviewer's decision wins; the model's outputs are kept for provenance."""

    case_id: str
    title: str
    body: str
    created_at: datetime | None
    channel: str | None
    model_department: str
    model_level: str | None
    model_version: str | None
    model_name: str
    #: The reviewer's department, or the model's when the review left it empty (a confirmation).
    decided_department: str
    #: The reviewer's level, or the model's when the review left it empty; None when neither has one.
    decided_level: str | None
    reviewer: str
    reviewed_at: datetime
    prediction_id: int
    review_id: int
    #: The reviewer's note, if any (why the level or department changed).
    note: str | None = None


def reviewed_cases(store: Store, *, since: datetime | None = None, until: datetime | None = None) -> list[ReviewedCase]:
    """Every case's latest review as of `until` (exclusive), kept if it was made at or after `since`.

    "Latest as of `until`" makes an export with `until` reproducible: reviews added later do not change
    it. Ordered by review time, then case id. Naive datetimes are taken as UTC.
    """
    reviews = select(Review.case_id, func.max(Review.id).label("review_id"))
    if until is not None:
        reviews = reviews.where(Review.created_at < as_utc(until))
    latest = reviews.group_by(Review.case_id).subquery()
    query = (
        select(Review, Prediction, Case)
        .join(latest, latest.c.review_id == Review.id)
        .join(Prediction, Prediction.id == Review.prediction_id)
        .join(Case, Case.id == Prediction.case_row_id)
        .order_by(Review.created_at, Review.case_id)
    )
    if since is not None:
        query = query.where(Review.created_at >= as_utc(since))
    with store._reads() as session:
        return [_reviewed(review, prediction, case) for review, prediction, case in session.execute(query).all()]


def _reviewed(review: Review, prediction: Prediction, case: Case) -> ReviewedCase:
    return ReviewedCase(
        case_id=case.case_id,
        title=case.title,
        body=case.body,
        created_at=case.created_at,
        channel=case.channel,
        model_department=prediction.department,
        model_level=prediction.risk_level,
        model_version=prediction.model_version,
        model_name=prediction.model_name,
        decided_department=review.decided_department or prediction.department,
        decided_level=review.decided_level or prediction.risk_level,
        reviewer=review.reviewer,
        reviewed_at=as_utc(review.created_at),
        prediction_id=prediction.id,
        review_id=review.id,
        note=review.note,
    )
