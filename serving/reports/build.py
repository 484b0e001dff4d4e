"""One report's figures, from the store, under the warning desk's policy (time zone) and gazetteer (districts).

`report_summary` is the same figures as plain JSON: what `GET /v1/reports/summary` answers, and what the
report's tests compare the printed PDF with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from features.districts import district_of
from serving.reports.period import ReportWindow, parse_day, report_window
from serving.warning_desk import WarningDesk
from store.report_queries import CaseCounts, ReportFigures, report_figures
from store.tables import utcnow


@dataclass(frozen=True)
class Report:
    window: ReportWindow
    figures: ReportFigures

    @property
    def title(self) -> str:
        return self.window.title

    @property
    def generated_at(self) -> datetime:
        return self.figures.at.astimezone(self.window.zone)


def build_report(desk: WarningDesk, period: str, day: str | date | None = None, now: datetime | None = None) -> Report:
    """The report of `period` ending on `day` (default today in the policy's zone); PeriodError if either is bad."""
    now = now or utcnow()
    zone = desk.policy.zone
    window = report_window(period, parse_day(day, zone, now), zone)
    gazetteer = desk.gazetteer
    with Session(desk.store.engine) as session:
        figures = report_figures(
            session, start=window.start, end=window.end, previous_start=window.previous_start,
            days=window.days, previous_days=window.previous_days, zone=zone,
            district_of=lambda title, body: district_of(title, body, gazetteer), now=now,
        )
    return Report(window, figures)


def _pairs(counts: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    return [{"key": k, "level": lv, "count": n} for (k, lv), n in sorted(counts.items())]


def _cases(counts: CaseCounts) -> dict[str, Any]:
    return {
        "total": counts.total,
        "by_level": counts.by_level,
        "by_department": counts.by_department,
        "by_district": counts.by_district,
        "department_level": _pairs(counts.department_level),
        "district_level": _pairs(counts.district_level),
        "risk_by_department": counts.risk_by_department,
        "risk_by_district": counts.risk_by_district,
        "risk_by_criterion": counts.risk_by_criterion,
        "by_day": {d.isoformat(): levels for d, levels in counts.by_day.items()},
    }


def report_summary(report: Report) -> dict[str, Any]:
    """The report's figures as JSON-ready values (times ISO 8601 with the policy's offset)."""
    f, w = report.figures, report.window
    return {
        "period": w.period,
        "title": w.title,
        "date": w.day.isoformat(),
        "start": w.start.isoformat(),
        "end": w.end.isoformat(),
        "previous_start": w.previous_start.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "cases": _cases(f.cases),
        "previous_cases": _cases(f.previous),
        "warnings": {
            "issued": f.warnings.total,
            "by_level": f.warnings.by_level,
            "by_status": f.warnings.by_status,
            "by_department": f.warnings.by_department,
            "by_district": f.warnings.by_district,
            "open": f.warnings.open,
            "overdue": f.warnings.overdue,
        },
        "backlog": {
            "open": f.backlog.open,
            "overdue": f.backlog.overdue,
            "overdue_by_department": f.backlog.overdue_by_department,
        },
        "overdue_warnings": [
            {"id": r.id, "number": r.number, "level": r.level, "department": r.department, "district": r.district,
             "escalation_level": r.escalation_level, "issued_at": r.issued_at.isoformat()}
            for r in f.overdue_warnings
        ],
        "alerts": [
            {"alert_id": a.alert_id, "level": a.level, "raised_at": a.raised_at.isoformat(),
             "place": (a.payload or {}).get("place"), "keywords": list((a.payload or {}).get("keywords") or [])[:5],
             "cases": (a.payload or {}).get("cases")}
            for a in f.alerts
        ],
    }
