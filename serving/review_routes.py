"""The review API: reviewers read cases and the queue and record decisions; admins read agreement reports.

Thin routes over `Store` (`review_queue`, `case_detail`, `add_review`, `agreement_report`). Logs carry
review ids, case ids, prediction ids and reviewer names only: never case text or reporter ids.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError

from features.text import mask_contact_details
from serving.bulk_review import confirm_many
from serving.dependencies import AdminDep, ModelStateDep, ReviewerDep, StoreDep, WarningsDep
from serving.review_rules import MAX_NOTE_CHARS, Decision, Problem, decide, known_departments
from serving.review_schemas import (
    MAX_QUEUE_LIMIT,
    AgreementReportOut,
    BulkConfirmOut,
    BulkConfirmRequest,
    BulkSkipped,
    CaseDetailOut,
    CaseVersionOut,
    ClaimOut,
    DateOrTime,
    PredictionOut,
    QueueCounts,
    QueueItemOut,
    ReleaseOut,
    ReviewOut,
    ReviewQueueOut,
    ReviewRequest,
)
from serving.routes import AUTH_ERRORS, _alert_summary
from serving.schemas import TIME_RANGE_MESSAGE, ErrorResponse, ModelRef, NulFree, ValidationErrorResponse, time_in_range
from serving.triage_service import _from_record
from serving.warning_desk import record_review
from store import PredictionRecord, ReviewRecord, Store
from store.claims import ClaimConflict
from store.review_queries import SearchRefused, search_terms
from store.tables import as_utc

logger = logging.getLogger(__name__)

INVALID: dict[int | str, dict[str, Any]] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "model": ValidationErrorResponse,
        "description": "A field is missing or wrong; `detail` names each one and the reason.",
    }
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorResponse, "description": "No such case, or no such prediction of it."}
}

review_router = APIRouter(tags=["review"])
#: Far beyond any queue, and inside a 64-bit SQL integer: a larger offset answered 500 (found by schemathesis).
MAX_QUEUE_OFFSET = 1_000_000_000

CaseIdPath = Annotated[
    str, Path(min_length=1, max_length=64, description="The ticket system's id of the case."), NulFree
]
SinceQuery = Annotated[
    DateOrTime | None,
    Query(description="From this day (UTC, inclusive) or moment (ISO date-time; naive = UTC).",
          examples=["2026-11-23"]),
]
UntilQuery = Annotated[
    DateOrTime | None,
    Query(description="Up to this day (UTC, inclusive) or before this moment (ISO date-time).",
          examples=["2026-11-29"]),
]


def _invalid(loc: tuple[str | int, ...], kind: str, msg: str, **ctx: Any) -> dict[str, Any]:
    """One error in FastAPI's 422 shape (the app's handler drops `input`)."""
    error: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": None}
    if ctx:
        error["ctx"] = ctx
    return error


def _bounds(since: date | datetime | None, until: date | datetime | None) -> tuple[datetime | None, datetime | None]:
    """[start, end) in UTC: a day as `since` starts at its midnight; a day as `until` includes that day."""
    for name, value in (("since", since), ("until", until)):
        # Checked on the value given, before any arithmetic: the end of the day 9999-12-31 overflows.
        moment = value if isinstance(value, datetime) or value is None else datetime.combine(value, time(), UTC)
        if moment is not None and not time_in_range(moment):
            raise RequestValidationError(
                [_invalid(("query", name), "datetime_out_of_range", f"{name} {TIME_RANGE_MESSAGE}")]
            )
    start = end = None
    if isinstance(since, datetime):
        start = as_utc(since)
    elif isinstance(since, date):
        start = datetime.combine(since, time(), UTC)
    if isinstance(until, datetime):
        end = as_utc(until)
    elif isinstance(until, date):
        end = datetime.combine(until + timedelta(days=1), time(), UTC)
    if start is not None and end is not None and start >= end:
        raise RequestValidationError(
            [_invalid(("query", "until"), "value_error", "until must be later than since")]
        )
    return start, end


def _review_out(record: ReviewRecord) -> ReviewOut:
    return ReviewOut(**asdict(record))


def _reviewed_prediction(store: Store, case_id: str, prediction_id: int | None) -> PredictionRecord:
    """The prediction a review is about; 404 for an unknown case or a prediction not of this case."""
    if prediction_id is None:
        latest = store.latest_prediction(case_id)
        if latest is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no case with id {case_id!r}")
        return latest
    predictions = store.predictions_for(case_id)
    if not predictions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no case with id {case_id!r}")
    for prediction in predictions:
        if prediction.id == prediction_id:
            return prediction
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"prediction {prediction_id} is not a prediction of case {case_id!r}"
    )


_MESSAGES = {
    "confirm_changes_department": "confirm keeps the model's department; use action 'change' to change it",
    "confirm_changes_level": "confirm keeps the model's level; use action 'change' to change it",
    "missing_note": "a change needs a note saying why",
    "note_too_long": f"the note is longer than {MAX_NOTE_CHARS} characters",
}


def _problem_error(problem: Problem, prediction: PredictionRecord, known: list[str]) -> dict[str, Any]:
    """A `review_rules` problem as one 422 `detail` entry, worded for API clients."""
    loc = ("body", problem.field)
    if problem.code == "nothing_changed":
        model_value = prediction.department if problem.field == "department" else prediction.risk_level
        msg = (
            f"the same as the model's {problem.field} ({model_value}); change needs a different department or level"
            if problem.given is not None
            else "change needs a department or a level that differs from the model's"
        )
        return _invalid(loc, problem.code, msg)
    if problem.code == "unknown_department":
        return _invalid(loc, problem.code, f"unknown department {problem.given!r}", allowed=known)
    if problem.code in ("unknown_level", "unknown_action"):
        return _invalid(loc, problem.code, f"unknown {problem.field} {problem.given!r}")
    return _invalid(loc, problem.code, _MESSAGES[problem.code])


def _decision(review: ReviewRequest, prediction: PredictionRecord, known: list[str]) -> Decision:
    """The decision to store (`serving.review_rules.decide`), or 422 naming each field that is wrong."""
    decided = decide(
        review.action, review.department, review.level, review.note,
        model_department=prediction.department, model_level=prediction.risk_level, known_departments=known,
    )
    if isinstance(decided, list):
        raise RequestValidationError([_problem_error(p, prediction, known) for p in decided])
    return decided


@review_router.post(
    "/v1/cases/{case_id:path}/reviews",
    response_model=ReviewOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a reviewer's decision on a case",
    responses={**NOT_FOUND, **INVALID, **AUTH_ERRORS},
)
def create_review(
    case_id: CaseIdPath, review: ReviewRequest, principal: ReviewerDep, store: StoreDep, state: ModelStateDep,
    warnings: WarningsDep,
) -> ReviewOut:
    """Confirm the model's department and level, or change either with a note. Every call appends a new
    review (nothing is overwritten); the reviewer is the API key's name. Without `prediction_id` the
    decision is about the case's latest prediction, which takes the case out of the review queue.
    The case's warning follows the decision: a new level or department updates it (never deletes it), and a
    level that calls for a warning issues one if the case has none."""
    prediction = _reviewed_prediction(store, case_id, review.prediction_id)
    decision = _decision(review, prediction, known_departments(state.model, store))
    try:
        stored = record_review(store, warnings, prediction, principal.name, department=decision.department,
                               level=decision.level, note=decision.note)
    except ValueError as exc:  # the prediction is not the case's: checked above, so only on a race
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    logger.info(
        "review id=%s case_id=%s prediction_id=%s reviewer=%s action=%s",
        stored.id, case_id, prediction.id, principal.name, review.action,
    )
    return _review_out(stored)


@review_router.post(
    "/v1/cases/{case_id:path}/claim",
    response_model=ClaimOut,
    summary="Claim a case: other reviewers see it is taken",
    responses={**NOT_FOUND, **AUTH_ERRORS,
               status.HTTP_409_CONFLICT: {"model": ErrorResponse, "description": "Another reviewer holds it."}},
)
def claim_case(case_id: CaseIdPath, principal: ReviewerDep, store: StoreDep) -> ClaimOut:
    """Claim (or renew the claim on) a case for 30 minutes; the queue shows who holds it and bulk
    confirmation skips it for everyone else. 409 names the reviewer who holds it."""
    if store.latest_prediction(case_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no case with id {case_id!r}")
    try:
        held = store.claim_case(case_id, principal.name)
    except ClaimConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    logger.info("claim case_id=%s reviewer=%s", case_id, principal.name)
    return ClaimOut(case_id=case_id, reviewer=held.reviewer, claimed_at=held.claimed_at, expires_at=held.expires_at)


@review_router.delete(
    "/v1/cases/{case_id:path}/claim",
    response_model=ReleaseOut,
    summary="Let a claimed case go",
    responses=AUTH_ERRORS,
)
def release_case(case_id: CaseIdPath, principal: ReviewerDep, store: StoreDep) -> ReleaseOut:
    return ReleaseOut(case_id=case_id, released=store.release_case(case_id, principal.name))


@review_router.post(
    "/v1/reviews/confirm",
    response_model=BulkConfirmOut,
    summary="Confirm several cases at once",
    responses={**INVALID, **AUTH_ERRORS},
)
def confirm_cases(
    body: BulkConfirmRequest, principal: ReviewerDep, store: StoreDep, warnings: WarningsDep
) -> BulkConfirmOut:
    """Confirm the model's department and level for each listed prediction still waiting for a review;
    the others (reviewed or re-scored meanwhile, or claimed by another reviewer) are skipped with why."""
    outcome = confirm_many(store, body.prediction_ids, principal.name, warnings)
    return BulkConfirmOut(
        confirmed=[_review_out(r) for r in outcome.confirmed],
        skipped=[BulkSkipped(prediction_id=pid, case_id=case_id, reason=reason, claimed_by=holder)
                 for pid, case_id, reason, holder in outcome.skipped],
    )


def _prediction_out(record: PredictionRecord) -> PredictionOut:
    triaged = _from_record(record)
    return PredictionOut(
        id=record.id,
        case_version_id=record.case_row_id,
        model=ModelRef(name=record.model_name, version=record.model_version),
        department=triaged.department,
        risk=triaged.risk,
        hot_issue=triaged.hot_issue,
        hot_issue_id=record.hot_issue_id,
        latency_ms=record.latency_ms,
        created_at=record.created_at,
        supersedes_id=record.supersedes_id,
    )


@review_router.get(
    "/v1/cases/{case_id:path}",
    response_model=CaseDetailOut,
    summary="One case with every prediction and review",
    responses={**NOT_FOUND, **INVALID, **AUTH_ERRORS},
)
def get_case(case_id: CaseIdPath, principal: ReviewerDep, store: StoreDep) -> CaseDetailOut:
    """The case's current text, every version, every prediction (department, top 3, risk level with its
    reasons and probabilities), every review, and the hot issue it belongs to (its current alert and
    the burst's other cases). Reporter ids are never returned."""
    detail = store.case_detail(case_id)
    if detail is None or detail.latest_version is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no case with id {case_id!r}")
    current = detail.latest_version
    latest = detail.latest_prediction
    return CaseDetailOut(
        case_id=case_id,
        title=mask_contact_details(current.title),
        body=mask_contact_details(current.body),
        created_at=current.created_at,
        channel=current.channel,
        received_at=current.received_at,
        pending=detail.pending,
        latest_prediction_id=None if latest is None else latest.id,
        versions=[
            CaseVersionOut(
                id=v.id, title=mask_contact_details(v.title), body=mask_contact_details(v.body),
                created_at=v.created_at, channel=v.channel,
                received_at=v.received_at, text_hash=v.text_hash,
            )
            for v in detail.versions
        ],
        predictions=[_prediction_out(p) for p in detail.predictions],
        reviews=[_review_out(r) for r in detail.reviews],
        alert=None if detail.alert is None else _alert_summary(detail.alert),
        hot_issue_id=None if latest is None else latest.hot_issue_id,
        burst_case_ids=detail.burst_case_ids,
    )


@review_router.get(
    "/v1/review-queue",
    response_model=ReviewQueueOut,
    summary="Cases waiting for a review",
    responses={**INVALID, **AUTH_ERRORS},
)
def review_queue(
    principal: ReviewerDep,
    store: StoreDep,
    level: Annotated[Literal["red", "yellow", "green"] | None, Query(description="Only this risk level.")] = None,
    department: Annotated[
        str | None,
        Query(min_length=1, max_length=128, description="Only cases routed to this department."),
        NulFree,
    ] = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_QUEUE_LIMIT)] = 50,
    offset: Annotated[
        int, Query(ge=0, le=MAX_QUEUE_OFFSET, description="Cases to skip (paging).")
    ] = 0,
    q: Annotated[
        str | None,
        Query(max_length=500, description="Words that must each be the case id or occur in its title or body "
              "(phone, ID-card and e-mail numbers cannot be searched: reviewers see them masked)."),
        NulFree,
    ] = None,
) -> ReviewQueueOut:
    """Cases whose latest prediction has no review: red first, then yellow, then low-confidence routes,
    then the rest; oldest first within each. Dates filter on when the case's text was received."""
    start, end = _bounds(since, until)
    try:
        search_terms(q)
    except SearchRefused as exc:
        raise RequestValidationError(
            [{"type": "search_refused", "loc": ["query", "q"], "msg": str(exc), "input": None}]
        ) from None
    filters: dict[str, Any] = {"level": level, "department": department, "since": start, "until": end, "search": q}
    items = store.review_queue(**filters, limit=limit, offset=offset)
    counts = store.review_queue_counts(**filters)
    held = store.live_claims([item.case_id for item in items])
    return ReviewQueueOut(
        items=[
            QueueItemOut(**asdict(item), claimed_by=held[item.case_id].reviewer if item.case_id in held else None,
                         claimed_until=held[item.case_id].expires_at if item.case_id in held else None)
            for item in items
        ],
        counts=QueueCounts(**counts, total=sum(counts.values())),
        limit=limit,
        offset=offset,
    )


@review_router.get(
    "/v1/reports/agreement",
    response_model=AgreementReportOut,
    summary="Model vs reviewer agreement",
    responses={**INVALID, **AUTH_ERRORS},
)
def agreement_report(
    principal: AdminDep, store: StoreDep, since: SinceQuery = None, until: UntilQuery = None
) -> AgreementReportOut:
    """Over each case's latest review in the window (on review time) and the prediction it judged:
    agreement overall, by predicted department, by predicted level (with the model→reviewer level
    matrix) and by ISO week, and the cases a reviewer made red that the model did not."""
    start, end = _bounds(since, until)
    return AgreementReportOut(**asdict(store.agreement_report(since=start, until=end)))
