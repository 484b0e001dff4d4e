"""Reading warnings in bulk: the list filters, and the counts a situation report needs.

`WarningFilters` is what `GET /v1/warnings` filters by; `warning_summary` counts warnings by level,
department, district and status, and the open and overdue ones, for one window of issue times — the
figures a daily or weekly report (issue 16, item 4) and the dashboard put beside the cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from store.records import AlertRecord, PredictionRecord
from store.tables import Case, EarlyWarning, HotspotAlert, Prediction, Review, as_utc
from store.warning_records import OPEN_STATUSES, STATUSES


@dataclass(frozen=True)
class WarningFilters:
    """All optional; `since` inclusive and `until` exclusive bound the issue time; `overdue` True keeps
    open warnings past a deadline they have not met, False those that are not."""

    status: str | None = None
    level: str | None = None
    department: str | None = None
    district: str | None = None
    overdue: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


def overdue_condition(now: datetime) -> Any:
    """SQL: open and past a deadline not yet met (acknowledge while still issued; resolve while open)."""
    return or_(
        and_(EarlyWarning.status == "issued", EarlyWarning.acknowledge_due <= now),
        and_(EarlyWarning.status.in_(OPEN_STATUSES), EarlyWarning.resolve_due <= now),
    )


def filtered(query: Select[Any], filters: WarningFilters, now: datetime) -> Select[Any]:
    if filters.status is not None:
        query = query.where(EarlyWarning.status == filters.status)
    if filters.level is not None:
        query = query.where(EarlyWarning.level == filters.level)
    if filters.department is not None:
        query = query.where(EarlyWarning.department == filters.department)
    if filters.district is not None:
        query = query.where(EarlyWarning.district == filters.district)
    if filters.since is not None:
        query = query.where(EarlyWarning.issued_at >= as_utc(filters.since))
    if filters.until is not None:
        query = query.where(EarlyWarning.issued_at < as_utc(filters.until))
    if filters.overdue is True:
        query = query.where(overdue_condition(now))
    elif filters.overdue is False:
        query = query.where(~overdue_condition(now))
    return query


@dataclass(frozen=True)
class WarningSummary:
    """Counts over the warnings issued in a window (or all), as they stand at `at`."""

    at: datetime
    total: int
    by_level: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_department: dict[str, int] = field(default_factory=dict)
    by_district: dict[str, int] = field(default_factory=dict)
    open: int = 0
    overdue: int = 0
    #: Open and overdue per department, most first: the ranking of departments by overdue warnings.
    overdue_by_department: dict[str, int] = field(default_factory=dict)
    #: (district, level) -> count, for a districts x level table.
    district_level: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (department, level) -> count.
    department_level: dict[tuple[str, str], int] = field(default_factory=dict)


def _grouped(session: Session, base: Select[Any], *columns: Any) -> list[tuple[Any, ...]]:
    sub = base.subquery()
    cols = [sub.c[c.key] for c in columns]
    return [tuple(r) for r in session.execute(select(*cols, func.count()).group_by(*cols)).all()]


def warning_summary(session: Session, filters: WarningFilters, now: datetime) -> WarningSummary:
    """Counts by level, status, department and district, open and overdue, under `filters`."""
    now = as_utc(now)
    base = filtered(select(EarlyWarning), filters, now)
    by_level = {k: n for k, n in _grouped(session, base, EarlyWarning.level)}
    by_status = {s: 0 for s in STATUSES} | {k: n for k, n in _grouped(session, base, EarlyWarning.status)}
    by_department = dict(sorted(_grouped(session, base, EarlyWarning.department), key=lambda p: (-p[1], p[0])))
    by_district = dict(sorted(_grouped(session, base, EarlyWarning.district), key=lambda p: (-p[1], p[0])))
    overdue_base = base.where(overdue_condition(now))
    overdue_by_department = dict(
        sorted(_grouped(session, overdue_base, EarlyWarning.department), key=lambda p: (-p[1], p[0]))
    )
    district_level = {(d, lv): n for d, lv, n in _grouped(session, base, EarlyWarning.district, EarlyWarning.level)}
    department_level = {
        (d, lv): n for d, lv, n in _grouped(session, base, EarlyWarning.department, EarlyWarning.level)
    }
    return WarningSummary(
        at=now,
        total=sum(by_level.values()),
        by_level=by_level,
        by_status=by_status,
        by_department=by_department,
        by_district=by_district,
        open=sum(by_status.get(s, 0) for s in OPEN_STATUSES),
        overdue=sum(overdue_by_department.values()),
        overdue_by_department=overdue_by_department,
        district_level=district_level,
        department_level=department_level,
    )


def _has_warning(kind: str, source: Any) -> Any:
    return exists(select(EarlyWarning.id).where(EarlyWarning.source_kind == kind, EarlyWarning.source_id == source))


def unwarned_predictions(
    session: Session, levels: Sequence[str], since: datetime, limit: int
) -> list[tuple[PredictionRecord, str, str]]:
    """Cases whose latest prediction (made since `since`) is at one of `levels`, not reviewed to another level,
    and that have no warning: with the text the prediction scored (for the district)."""
    latest = (
        select(func.max(Prediction.id).label("id"))
        .where(Prediction.created_at >= as_utc(since))
        .group_by(Prediction.case_id)
        .subquery()
    )
    overruled = exists(
        select(Review.id).where(Review.prediction_id == Prediction.id, Review.decided_level.is_not(None),
                                Review.decided_level.not_in(list(levels)))
    )
    rows = session.execute(
        select(Prediction, Case.text_hash, Case.title, Case.body)
        .join(latest, latest.c.id == Prediction.id)
        .join(Case, Case.id == Prediction.case_row_id)
        .where(Prediction.risk_level.in_(list(levels)), ~_has_warning("case", Prediction.case_id), ~overruled)
        .order_by(Prediction.id)
        .limit(limit)
    ).all()
    return [(PredictionRecord.of(p, digest), title, body) for p, digest, title, body in rows]


def unwarned_alerts(session: Session, since: datetime, limit: int) -> list[tuple[AlertRecord, str, str, str]]:
    """Alerts raised since `since` without a warning, each with the department and text of the case that
    raised it (its last member's latest prediction; "unknown" when that case has none stored)."""
    alerts = session.scalars(
        select(HotspotAlert)
        .where(HotspotAlert.raised_at >= as_utc(since), ~_has_warning("alert", HotspotAlert.alert_id))
        .order_by(HotspotAlert.id)
        .limit(limit)
    ).all()
    return _with_raising_cases(session, alerts)


def predictions_after(
    session: Session, after_id: int, up_to: int, levels: Sequence[str], limit: int
) -> list[tuple[PredictionRecord, str, str]]:
    """Predictions of rows (`after_id`, `up_to`] at one of `levels` whose case has no warning yet, in id order,
    with the text they scored. Another replica's round may have issued some already: they are not read again."""
    warned = exists().where(EarlyWarning.source_kind == "case", EarlyWarning.source_id == Prediction.case_id)
    rows = session.execute(
        select(Prediction, Case.text_hash, Case.title, Case.body)
        .join(Case, Case.id == Prediction.case_row_id)
        .where(Prediction.id > after_id, Prediction.id <= up_to, Prediction.risk_level.in_(list(levels)), ~warned)
        .order_by(Prediction.id)
        .limit(limit)
    ).all()
    return [(PredictionRecord.of(p, digest), title, body) for p, digest, title, body in rows]


def alerts_after(
    session: Session, after_id: int, up_to: int, limit: int
) -> list[tuple[int, AlertRecord, str, str, str]]:
    """Alerts of rows (`after_id`, `up_to`] without a warning yet, in id order: (row id, alert, department,
    title, body) as `unwarned_alerts` gives them."""
    warned = exists().where(EarlyWarning.source_kind == "alert", EarlyWarning.source_id == HotspotAlert.alert_id)
    alerts = session.scalars(
        select(HotspotAlert)
        .where(HotspotAlert.id > after_id, HotspotAlert.id <= up_to, ~warned)
        .order_by(HotspotAlert.id)
        .limit(limit)
    ).all()
    return [(alert.id, *found) for alert, found in zip(alerts, _with_raising_cases(session, alerts), strict=True)]


def _with_raising_cases(session: Session, alerts: Sequence[HotspotAlert]) -> list[tuple[AlertRecord, str, str, str]]:
    """Each alert with its raising case's latest department and text, in one query for all of them (a round
    under load reads dozens of alerts; a query each was about a sixth of a round's time, by py-spy)."""
    case_ids = {str((alert.payload or {}).get("last_case_id") or "") for alert in alerts}
    found: dict[str, tuple[str, str, str]] = {}
    if case_ids:
        latest = (
            select(func.max(Prediction.id)).where(Prediction.case_id.in_(sorted(case_ids))).group_by(Prediction.case_id)
        )
        rows = session.execute(
            select(Prediction.case_id, Prediction.department, Case.title, Case.body)
            .join(Case, Case.id == Prediction.case_row_id)
            .where(Prediction.id.in_(latest))
        )
        found = {case_id: (department, title, body) for case_id, department, title, body in rows}
    out = []
    for alert in alerts:
        case_id = str((alert.payload or {}).get("last_case_id") or "")
        department, title, body = found.get(case_id, ("unknown", "", ""))
        out.append((AlertRecord.of(alert), department, title, body))
    return out


def last_ids(session: Session) -> tuple[int, int]:
    """The newest prediction and alert row ids (0 for none)."""
    prediction = session.execute(select(func.max(Prediction.id))).scalar()
    alert = session.execute(select(func.max(HotspotAlert.id))).scalar()
    return int(prediction or 0), int(alert or 0)
