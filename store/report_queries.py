"""The figures of a situation report (调度日报 / 形势周报 / 月报, issue 16 item 4) for one window and the one before.

Cases are counted in their current state, as the dashboard counts them: each case once, by its latest
prediction, on the day it was filed (its claimed filing time, never later than the service received it),
at the level and department a reviewer decided if one reviewed that prediction, else the model's. The
district is read from the case's text by the caller's `district_of` (`features.districts` against the
policy's gazetteer), since the store keeps no district for a case. Warnings are counted by issue time
(`store.warning_queries.warning_summary`), with the open and overdue ones of all periods beside them: a
warning left open from last week is still this week's business. Hot issues are the alerts raised in the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from sqlalchemy import and_, case, exists, select
from sqlalchemy.orm import Session, aliased

from store.records import AlertRecord
from store.tables import Case, EarlyWarning, HotspotAlert, Prediction, Review, as_utc
from store.warning_queries import WarningFilters, WarningSummary, overdue_condition, warning_summary
from store.warning_records import WarningRecord

LEVELS = ("red", "yellow", "green", "none")
RISK_LEVELS = ("red", "yellow")
#: Reviews are read for this many predictions per query (well under SQLite's bound-parameter limit).
ID_CHUNK = 2000
#: The overdue warnings a report lists one by one (the counts cover all of them).
OVERDUE_LISTED = 30
MAX_ALERTS = 200


@dataclass(frozen=True)
class CaseState:
    """One case as a report counts it."""

    case_id: str
    filed_at: datetime
    level: str
    department: str
    district: str
    #: The rubric criteria (red-1, yellow-3, ...) its risk reasons name, each once.
    criteria: tuple[str, ...]


@dataclass(frozen=True)
class CaseCounts:
    """Counts of the cases filed in one window."""

    total: int = 0
    by_level: dict[str, int] = field(default_factory=dict)
    by_department: dict[str, int] = field(default_factory=dict)
    by_district: dict[str, int] = field(default_factory=dict)
    #: (department, level) and (district, level) -> count.
    department_level: dict[tuple[str, str], int] = field(default_factory=dict)
    district_level: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Red and yellow cases per department, per district and per rubric criterion, most first.
    risk_by_department: dict[str, int] = field(default_factory=dict)
    risk_by_district: dict[str, int] = field(default_factory=dict)
    risk_by_criterion: dict[str, int] = field(default_factory=dict)
    #: Local day -> level -> count, every day of the window present.
    by_day: dict[date, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportFigures:
    """Everything a report shows: the window's counts, the previous window's, warnings and hot issues."""

    start: datetime
    end: datetime
    previous_start: datetime
    at: datetime
    cases: CaseCounts
    previous: CaseCounts
    #: Warnings issued in the window, as they stand at `at`.
    warnings: WarningSummary
    #: All warnings (any issue time) as they stand at `at`: the open and overdue backlog.
    backlog: WarningSummary
    overdue_warnings: list[WarningRecord]
    alerts: list[AlertRecord]


def _most_first(counter: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda p: (-p[1], p[0])))


def _criteria(reasons: Any) -> tuple[str, ...]:
    risk = reasons.get("risk") if isinstance(reasons, Mapping) else reasons
    found = []
    for reason in risk or []:
        criterion = reason.get("criterion") if isinstance(reason, Mapping) else None
        if isinstance(criterion, str) and criterion and criterion not in found:
            found.append(criterion)
    return tuple(found)


def _filed_at() -> Any:
    """SQL: the claimed filing time, unless absent or later than receipt (as `serving.web.charts` counts)."""
    return case(
        (and_(Case.created_at.is_not(None), Case.created_at < Case.received_at), Case.created_at),
        else_=Case.received_at,
    )


def case_states(
    session: Session, since: datetime, until: datetime, district_of: Callable[[str, str], str]
) -> list[CaseState]:
    """The cases filed in [`since`, `until`) in their current state (see the module's docstring)."""
    later = aliased(Prediction)
    filed = _filed_at().label("filed_at")
    rows = session.execute(
        select(Prediction.id, Prediction.case_id, Prediction.risk_level, Prediction.department,
               Prediction.reasons, Case.title, Case.body, filed)
        .join(Case, Case.id == Prediction.case_row_id)
        .where(~exists().where(later.supersedes_id == Prediction.id),
               _filed_at() >= as_utc(since), _filed_at() < as_utc(until))
        .order_by(Prediction.id)
    ).all()
    decided: dict[int, tuple[str | None, str | None]] = {}
    ids = [r[0] for r in rows]
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        for prediction_id, department, level in session.execute(
            select(Review.prediction_id, Review.decided_department, Review.decided_level)
            .where(Review.prediction_id.in_(chunk))
            .order_by(Review.id)
        ):
            decided[prediction_id] = (department, level)  # the latest review wins
    states = []
    for prediction_id, case_id, level, department, reasons, title, body, filed_at in rows:
        reviewed_department, reviewed_level = decided.get(prediction_id, (None, None))
        states.append(CaseState(
            case_id=case_id,
            filed_at=as_utc(filed_at),
            level=reviewed_level or level or "none",
            department=reviewed_department or department,
            district=district_of(title or "", body or ""),
            criteria=_criteria(reasons),
        ))
    return states


def count_cases(states: Sequence[CaseState], days: Sequence[date], zone: tzinfo) -> CaseCounts:
    """The counts a report prints, from `case_states`; `days` are the window's local days."""
    by_level = Counter(s.level for s in states)
    risky = [s for s in states if s.level in RISK_LEVELS]
    by_day: dict[date, dict[str, int]] = {d: dict.fromkeys(LEVELS, 0) for d in days}
    for s in states:
        day = s.filed_at.astimezone(zone).date()
        if day in by_day:
            by_day[day][s.level] = by_day[day].get(s.level, 0) + 1
    return CaseCounts(
        total=len(states),
        by_level={level: by_level.get(level, 0) for level in LEVELS} | dict(by_level),
        by_department=_most_first(Counter(s.department for s in states)),
        by_district=_most_first(Counter(s.district for s in states)),
        department_level=dict(Counter((s.department, s.level) for s in states)),
        district_level=dict(Counter((s.district, s.level) for s in states)),
        risk_by_department=_most_first(Counter(s.department for s in risky)),
        risk_by_district=_most_first(Counter(s.district for s in risky)),
        risk_by_criterion=_most_first(Counter(c for s in risky for c in s.criteria)),
        by_day=by_day,
    )


def alerts_between(session: Session, since: datetime, until: datetime, limit: int = MAX_ALERTS) -> list[AlertRecord]:
    """Hot-issue alerts raised in [`since`, `until`), red first, then newest first."""
    rows = session.scalars(
        select(HotspotAlert)
        .where(HotspotAlert.raised_at >= as_utc(since), HotspotAlert.raised_at < as_utc(until))
        .order_by(HotspotAlert.raised_at.desc(), HotspotAlert.id.desc())
        .limit(limit)
    ).all()
    records = [AlertRecord.of(r) for r in rows]
    return sorted(records, key=lambda a: 0 if a.level == "red" else 1)  # stable: newest first within a level


def overdue_warnings(session: Session, now: datetime, limit: int = OVERDUE_LISTED) -> list[WarningRecord]:
    """Open warnings past a deadline, the most escalated and then the oldest first."""
    rows = session.scalars(
        select(EarlyWarning)
        .where(overdue_condition(as_utc(now)))
        .order_by(EarlyWarning.escalation_level.desc(), EarlyWarning.issued_at, EarlyWarning.id)
        .limit(limit)
    ).all()
    return [WarningRecord.of(r) for r in rows]


def report_figures(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    previous_start: datetime,
    days: Sequence[date],
    previous_days: Sequence[date],
    zone: tzinfo,
    district_of: Callable[[str, str], str],
    now: datetime,
) -> ReportFigures:
    """The report's figures for [`start`, `end`) and the previous window [`previous_start`, `start`)."""
    now = as_utc(now)
    current = case_states(session, start, end, district_of)
    before = case_states(session, previous_start, start, district_of)
    return ReportFigures(
        start=as_utc(start),
        end=as_utc(end),
        previous_start=as_utc(previous_start),
        at=now,
        cases=count_cases(current, days, zone),
        previous=count_cases(before, previous_days, zone),
        warnings=warning_summary(session, WarningFilters(since=start, until=end), now),
        backlog=warning_summary(session, WarningFilters(), now),
        overdue_warnings=overdue_warnings(session, now),
        alerts=alerts_between(session, start, end),
    )
