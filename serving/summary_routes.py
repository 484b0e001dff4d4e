"""`GET /v1/reports/summary`: a situation report's figures as JSON, for admins (the `/reports` page and
`triage report` print the same figures, from `serving.reports.build`)."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from serving.dependencies import AdminDep, WarningsDep
from serving.reports.build import build_report, report_summary
from serving.reports.period import FIRST_DAY, LAST_DAY
from serving.routes import AUTH_ERRORS

logger = logging.getLogger(__name__)

summary_router = APIRouter(prefix="/v1/reports", tags=["reports"])


class LevelCount(BaseModel):
    key: str = Field(description="The department or district.")
    level: str
    count: int


class CaseCountsOut(BaseModel):
    total: int
    by_level: dict[str, int]
    by_department: dict[str, int] = Field(description="Most first.")
    by_district: dict[str, int] = Field(description="Most first; `unknown` where the text names no district.")
    department_level: list[LevelCount]
    district_level: list[LevelCount]
    risk_by_department: dict[str, int] = Field(description="Red and yellow cases, most first.")
    risk_by_district: dict[str, int]
    risk_by_criterion: dict[str, int] = Field(description="Red and yellow cases per rubric criterion.")
    by_day: dict[str, dict[str, int]] = Field(description="Local day -> level -> cases.")


class WarningCountsOut(BaseModel):
    issued: int
    by_level: dict[str, int]
    by_status: dict[str, int]
    by_department: dict[str, int]
    by_district: dict[str, int]
    open: int
    overdue: int


class BacklogOut(BaseModel):
    open: int
    overdue: int
    overdue_by_department: dict[str, int] = Field(description="The ranking of departments by overdue warnings.")


class OverdueWarningOut(BaseModel):
    id: int
    number: str
    level: str
    department: str
    district: str
    escalation_level: int
    issued_at: str


class ReportAlertOut(BaseModel):
    alert_id: str
    level: str
    raised_at: str
    place: str | None = None
    keywords: list[str]
    cases: int | None = None


class ReportSummaryOut(BaseModel):
    period: Literal["day", "week", "month"]
    title: str
    date: str = Field(description="The last day covered (policy time zone).")
    start: str
    end: str
    previous_start: str
    generated_at: str
    cases: CaseCountsOut
    previous_cases: CaseCountsOut
    warnings: WarningCountsOut = Field(description="Warnings issued in the period, as they stand now.")
    backlog: BacklogOut = Field(description="All warnings, any issue time: open and overdue now.")
    overdue_warnings: list[OverdueWarningOut]
    alerts: list[ReportAlertOut] = Field(description="Hot issues raised in the period, red first.")


@summary_router.get(
    "/summary",
    response_model=ReportSummaryOut,
    responses=AUTH_ERRORS,
)
def report_summary_route(
    principal: AdminDep,
    desk: WarningsDep,
    period: Annotated[Literal["day", "week", "month"], Query(description="day: 调度日报; week: 形势周报 "
                                                             "(7 days); month: 月报 (30 days).")] = "week",
    day: Annotated[date | None, Query(alias="date", ge=FIRST_DAY, le=LAST_DAY,
                                      description="Last day covered; default today (policy time zone).")] = None,
) -> ReportSummaryOut:
    """The figures of `triage report` and the `/reports` page, for the period ending on `date` (FastAPI has
    checked both: an unknown period or a date outside 2000-01-01..2100-12-31 is a 422 naming the parameter)."""
    built = build_report(desk, period, day)
    logger.info("report summary period=%s date=%s by %s", period, built.window.day, principal.name)
    return ReportSummaryOut.model_validate(report_summary(built))
