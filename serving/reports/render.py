"""A report as HTML: the body (shared by the `/reports` page and the file) and the self-contained document.

Jinja2 with autoescape; the charts are data URIs made here (`serving.reports.charts`); the stylesheet is
inlined into the document (A4 page rules for printing), while the page links the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from features.risk_cues import CRITERION_NAMES
from serving.reports import charts
from serving.reports.build import Report
from serving.reports.period import PREVIOUS_NAMES

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET = Path(__file__).resolve().parent.parent / "web" / "static" / "report.css"
LEVEL_NAMES = {"red": "红色", "yellow": "黄色", "green": "绿色", "none": "无风险等级"}
STATUS_NAMES = {"issued": "待签收", "acknowledged": "已签收", "resolved": "已办结", "withdrawn": "已撤回"}
TOP_ROWS = 10

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def change(now: int, before: int) -> str:
    """"+3（+25.0%）", "-2（-10.0%）", "持平", or "新增" (none before)."""
    delta = now - before
    if delta == 0:
        return "持平"
    if before == 0:
        return f"+{delta}（新增）"
    return f"{delta:+d}（{100 * delta / before:+.1f}%）"


def criterion_name(criterion: str) -> str:
    level, _, number = criterion.partition("-")
    prefix = f"{LEVEL_NAMES.get(level, level)[:1]}-{number}" if number else criterion
    name = CRITERION_NAMES.get(criterion)
    return f"{prefix} {name}" if name else prefix


def district_name(name: str) -> str:
    return "未识别区县" if name == "unknown" else name


_env.filters.update(change=change, criterion_name=criterion_name, district_name=district_name)
_env.globals.update(LEVEL_NAMES=LEVEL_NAMES, STATUS_NAMES=STATUS_NAMES)


@dataclass(frozen=True)
class Row:
    name: str
    total: int
    red: int
    yellow: int
    previous: int


def _rows(counts: dict[str, int], pairs: dict[tuple[str, str], int], previous: dict[str, int]) -> list[Row]:
    return [Row(name, n, pairs.get((name, "red"), 0), pairs.get((name, "yellow"), 0), previous.get(name, 0))
            for name, n in list(counts.items())]


def context(report: Report) -> dict[str, Any]:
    f, w = report.figures, report.window
    previous_name = PREVIOUS_NAMES[w.period]
    return {
        "report": report,
        "window": w,
        "f": f,
        "previous_name": previous_name,
        "levels": ["red", "yellow", "green", "none"],
        "departments": _rows(f.cases.by_department, f.cases.department_level, f.previous.by_department),
        "districts": _rows(f.cases.by_district, f.cases.district_level, f.previous.by_district),
        "risk_departments": list(f.cases.risk_by_department.items())[:TOP_ROWS],
        "risk_districts": list(f.cases.risk_by_district.items())[:TOP_ROWS],
        "risk_criteria": list(f.cases.risk_by_criterion.items())[:TOP_ROWS],
        "previous_risk_departments": f.previous.risk_by_department,
        "previous_risk_districts": f.previous.risk_by_district,
        "charts": {
            "levels": charts.level_comparison(f.cases.by_level, f.previous.by_level, "本期", previous_name),
            "daily": charts.daily_levels(f.cases.by_day) if len(w.days) > 1 else None,  # a day: one bar
            "departments": charts.ranked_levels(f.cases.department_level),
            "districts": charts.ranked_levels(f.cases.district_level),
        },
    }


def render_body(report: Report) -> Markup:
    """The report's sections, as trusted HTML (autoescaped when made) for a page to place."""
    return Markup(_env.get_template("report_body.html").render(context(report)))


def render_document(report: Report) -> str:
    """One self-contained HTML file: the body, the stylesheet inlined, the charts as data URIs."""
    return _env.get_template("report.html").render(
        body=render_body(report), title=f"{report.title}（{report.window.label}）",
        stylesheet=Markup(STYLESHEET.read_text(encoding="utf-8")),
    )
