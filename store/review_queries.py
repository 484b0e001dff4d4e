"""The queries behind the review API: the queue of pending cases, one case's detail, agreement figures.

Functions take an open `Session` so `Store` can run each in one read transaction (a consistent view)
and tests can call them directly. They only read.

"Latest prediction" is the one no other prediction supersedes: a case's predictions form one chain
(`predictions.supersedes_id` is unique, hence indexed), so this is an index-backed anti-join rather
than a per-case MAX. A case is pending while its latest prediction has no review; a review of an older,
superseded prediction does not count, so a changed text puts a reviewed case back in the queue.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from features.text import mask_contact_details
from store.records import AlertRecord, CaseRecord, PredictionRecord, ReviewRecord
from store.review_records import (
    BODY_PREVIEW_CHARS,
    LEVELS,
    NO_LEVEL,
    PRIORITIES,
    AgreementOverall,
    AgreementReport,
    CaseDetail,
    DepartmentAgreement,
    LevelAgreement,
    MissedRed,
    QueueItem,
    WeekAgreement,
    rate,
)
from store.tables import Case, HotspotAlert, HotspotMember, Prediction, Review, as_utc

DEFAULT_QUEUE_LIMIT = 50
MAX_SEARCH_TERMS = 5
MAX_SEARCH_CHARS = 100


def _priority_rank() -> ColumnElement[int]:
    """0 red, 1 yellow, 2 low-confidence route, 3 the rest: the index into `PRIORITIES`."""
    return case(
        (Prediction.risk_level == "red", 0),
        (Prediction.risk_level == "yellow", 1),
        (Prediction.needs_review.is_(True), 2),
        else_=3,
    )


class SearchRefused(ValueError):
    """A search term that is a phone, ID-card or e-mail number: reviewers see those masked, so a search
    must not tell them which case holds one."""


def search_terms(text: str | None) -> list[str]:
    """A queue search as terms (whitespace-separated, at most `MAX_SEARCH_TERMS` of at most
    `MAX_SEARCH_CHARS` characters); every term must match the case id or occur in the title or body."""
    if not text:
        return []
    terms = [t[:MAX_SEARCH_CHARS] for t in text.split()[:MAX_SEARCH_TERMS]]
    if any(mask_contact_details(t) != t for t in terms):
        raise SearchRefused("phone, ID-card and e-mail numbers are masked for reviewers and cannot be searched")
    return terms


def _pending_conditions(
    level: str | None,
    department: str | None,
    since: datetime | None,
    until: datetime | None,
    search: list[str] | None = None,
) -> list[ColumnElement[bool]]:
    later = aliased(Prediction)
    conditions: list[ColumnElement[bool]] = [
        ~exists().where(later.supersedes_id == Prediction.id),
        ~exists().where(Review.prediction_id == Prediction.id),
    ]
    if level is not None:
        conditions.append(Prediction.risk_level == level)
    if department is not None:
        conditions.append(Prediction.department == department)
    if since is not None:
        conditions.append(Case.received_at >= as_utc(since))
    if until is not None:
        conditions.append(Case.received_at < as_utc(until))
    for term in search or []:
        # LIKE with the term's own % and _ escaped: a plain substring test, linear in the text.
        conditions.append(or_(Prediction.case_id == term, Case.title.contains(term, autoescape=True),
                              Case.body.contains(term, autoescape=True)))
    return conditions


def review_queue(
    session: Session,
    *,
    level: str | None = None,
    department: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_QUEUE_LIMIT,
    offset: int = 0,
    search: list[str] | None = None,
) -> list[QueueItem]:
    """Pending cases, red first, then yellow, then needs_review, then the rest; oldest received first.

    `since` is inclusive and `until` exclusive, both on when the scored text version was received.
    The page is chosen on narrow rows (ids and sort keys) and only its rows' text is read, and only the
    first `BODY_PREVIEW_CHARS` characters of a body leave the database (phone, ID-card and e-mail masked).
    """
    page = (
        select(Prediction.id.label("id"), _priority_rank().label("rank"), Case.received_at.label("received_at"))
        .join(Case, Case.id == Prediction.case_row_id)
        .where(*_pending_conditions(level, department, since, until, search))
        .order_by(_priority_rank(), Case.received_at, Prediction.id)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    query: Select[Any] = (
        select(
            Prediction.case_id,
            Prediction.id,
            Case.title,
            # Read past the preview's end so a phone number across it is masked whole, then cut.
            func.substr(Case.body, 1, 2 * BODY_PREVIEW_CHARS).label("body_preview"),
            Case.received_at,
            Case.created_at,
            Prediction.department,
            Prediction.department_confidence,
            Prediction.needs_review,
            Prediction.risk_level,
            Prediction.hot_issue_id,
            page.c.rank,
        )
        .join(page, page.c.id == Prediction.id)
        .join(Case, Case.id == Prediction.case_row_id)
        .order_by(page.c.rank, page.c.received_at, Prediction.id)
    )
    return [
        QueueItem(
            case_id=row.case_id,
            prediction_id=row.id,
            title=mask_contact_details(row.title),
            body_preview=mask_contact_details(row.body_preview or "")[:BODY_PREVIEW_CHARS],
            received_at=as_utc(row.received_at),
            case_created_at=None if row.created_at is None else as_utc(row.created_at),
            department=row.department,
            department_confidence=row.department_confidence,
            needs_review=bool(row.needs_review),
            risk_level=row.risk_level,
            hot_issue_id=row.hot_issue_id,
            priority=PRIORITIES[row.rank],
        )
        for row in session.execute(query)
    ]


def pending_prediction(session: Session, prediction_id: int) -> PredictionRecord | None:
    """The prediction, if it is its case's latest and has no review."""
    row = session.execute(
        select(Prediction, Case.text_hash)
        .join(Case, Case.id == Prediction.case_row_id)
        .where(Prediction.id == prediction_id, *_pending_conditions(None, None, None, None))
    ).first()
    return None if row is None else PredictionRecord.of(row[0], row[1])


def review_queue_counts(
    session: Session,
    *,
    level: str | None = None,
    department: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: list[str] | None = None,
) -> dict[str, int]:
    """Pending cases per priority (every priority present, zeros included), under the queue's filters."""
    ranked = select(_priority_rank().label("rank")).select_from(Prediction)
    if since is not None or until is not None or search:  # the cases table: for the time filter and search
        ranked = ranked.join(Case, Case.id == Prediction.case_row_id)
    subquery = ranked.where(*_pending_conditions(level, department, since, until, search)).subquery()
    # Grouping a subquery's column, not the CASE itself: PostgreSQL cannot match two copies of a CASE
    # whose literals are separate bind parameters.
    counts = dict.fromkeys(PRIORITIES, 0)
    for rank, n in session.execute(select(subquery.c.rank, func.count()).group_by(subquery.c.rank)):
        counts[PRIORITIES[rank]] = n
    return counts


def case_detail(session: Session, case_id: str) -> CaseDetail | None:
    """The case's versions, predictions and reviews (oldest first) and its burst; None if unknown."""
    versions = [
        CaseRecord.of(row)
        for row in session.scalars(select(Case).where(Case.case_id == case_id).order_by(Case.id))
    ]
    if not versions:
        return None
    hashes = {v.id: v.text_hash for v in versions}
    predictions = [
        PredictionRecord.of(row, hashes[row.case_row_id])
        for row in session.scalars(select(Prediction).where(Prediction.case_id == case_id).order_by(Prediction.id))
    ]
    reviews = [
        ReviewRecord.of(row)
        for row in session.scalars(select(Review).where(Review.case_id == case_id).order_by(Review.id))
    ]
    alert: AlertRecord | None = None
    burst_case_ids: list[str] = []
    burst_id = predictions[-1].hot_issue_id if predictions else None
    if burst_id:
        current = session.scalars(
            select(HotspotAlert)
            .where(HotspotAlert.burst_id == burst_id)
            .order_by(HotspotAlert.raised_at.desc(), HotspotAlert.id.desc())
            .limit(1)
        ).first()
        alert = None if current is None else AlertRecord.of(current)
        members = session.scalars(
            select(HotspotMember.case_id)
            .where(HotspotMember.burst_id == burst_id)
            .order_by(HotspotMember.observed_at, HotspotMember.id)
        )
        burst_case_ids = [member for member in members if member != case_id]
    return CaseDetail(
        case_id=case_id,
        versions=versions,
        predictions=predictions,
        reviews=reviews,
        alert=alert,
        burst_case_ids=burst_case_ids,
    )


def known_departments(session: Session) -> list[str]:
    """Every department some prediction named, sorted (the fallback vocabulary without a model)."""
    return list(session.scalars(select(Prediction.department).distinct().order_by(Prediction.department)))


def iso_week(moment: datetime) -> str:
    year, week, _ = as_utc(moment).isocalendar()
    return f"{year}-W{week:02d}"


def agreement_report(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> AgreementReport:
    """Model vs reviewer over each case's latest review in [since, until) and the prediction it judged.

    A review whose decided department or level is empty left the model's value standing (agreement).
    """
    window: list[ColumnElement[bool]] = []
    if since is not None:
        window.append(Review.created_at >= as_utc(since))
    if until is not None:
        window.append(Review.created_at < as_utc(until))
    latest = select(func.max(Review.id).label("id")).where(*window).group_by(Review.case_id).subquery()
    query = (
        select(
            Review.id,
            Review.case_id,
            Review.prediction_id,
            Review.reviewer,
            Review.decided_department,
            Review.decided_level,
            Review.created_at,
            Prediction.department,
            Prediction.risk_level,
        )
        .join(latest, latest.c.id == Review.id)
        .join(Prediction, Prediction.id == Review.prediction_id)
        .order_by(Review.created_at, Review.id)
    )
    return summarise_agreement(session.execute(query), since=since, until=until)


def summarise_agreement(rows: Iterable[Any], *, since: datetime | None, until: datetime | None) -> AgreementReport:
    """Aggregate rows carrying a review's decision and the reviewed prediction's outputs."""
    departments: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # reviewed, agreed
    levels: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    weeks: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # reviewed, agreed dept, agreed level
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    missed: list[MissedRed] = []
    total = agreed_departments = agreed_levels = 0
    for row in rows:
        decided_department = row.decided_department or row.department
        decided_level = row.decided_level or row.risk_level
        same_department = decided_department == row.department
        same_level = decided_level == row.risk_level
        model_level = row.risk_level or NO_LEVEL
        total += 1
        agreed_departments += same_department
        agreed_levels += same_level
        departments[row.department][0] += 1
        departments[row.department][1] += same_department
        levels[model_level][0] += 1
        levels[model_level][1] += same_level
        confusion[model_level][decided_level or NO_LEVEL] += 1
        week = weeks[iso_week(row.created_at)]
        week[0] += 1
        week[1] += same_department
        week[2] += same_level
        if decided_level == "red" and row.risk_level != "red":
            missed.append(
                MissedRed(
                    case_id=row.case_id,
                    predicted_level=row.risk_level,
                    reviewer=row.reviewer,
                    reviewed_at=as_utc(row.created_at),
                    prediction_id=row.prediction_id,
                    review_id=row.id,
                )
            )
    level_order = [*LEVELS, NO_LEVEL]

    def level_key(level: str) -> tuple[int, str]:
        return (level_order.index(level) if level in level_order else len(level_order), level)

    return AgreementReport(
        overall=AgreementOverall(
            reviewed=total,
            agreed_department=agreed_departments,
            agreed_level=agreed_levels,
            department_agreement=rate(agreed_departments, total),
            level_agreement=rate(agreed_levels, total),
        ),
        by_department=[
            DepartmentAgreement(department=name, reviewed=n, agreed=ok, rate=rate(ok, n))
            for name, (n, ok) in sorted(departments.items(), key=lambda item: (-item[1][0], item[0]))
        ],
        by_level=[
            LevelAgreement(level=name, reviewed=n, agreed=ok, rate=rate(ok, n))
            for name, (n, ok) in sorted(levels.items(), key=lambda item: level_key(item[0]))
        ],
        level_confusion={
            model: {decided: confusion[model][decided] for decided in sorted(confusion[model], key=level_key)}
            for model in sorted(confusion, key=level_key)
        },
        by_week=[
            WeekAgreement(week=name, reviewed=n, department_agreement=rate(d, n), level_agreement=rate(lv, n))
            for name, (n, d, lv) in sorted(weeks.items())
        ],
        missed_red=missed,
        since=since,
        until=until,
    )
