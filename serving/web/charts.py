"""The dashboard's chart: cases per period by level and by department, drawn as inline SVG by the server.

No charting library and no script: the machine serving the page may be offline, and the page's CSP
allows no inline script. This module reads the current state of every case (its latest prediction, the
text version it scored) and computes bar geometry; the template only prints numbers into `<rect>`s.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from serving.web.present import display_time
from store import Store
from store.tables import Case, Prediction, as_utc

LEVEL_ORDER = ("red", "yellow", "green", "none")
LEVEL_COLOURS = {"red": "#c62828", "yellow": "#f9a825", "green": "#2e7d32", "none": "#9e9e9e"}
#: Colour-blind friendly qualitative palette (Okabe-Ito), then greys for the rest.
DEPARTMENT_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MAX_PERIODS = 26
CHART_WIDTH, CHART_HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 40, 40, 10


@dataclass(frozen=True)
class CaseRow:
    day: date
    level: str
    department: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass
class Chart:
    title: str
    unit: str
    bars: list[Bar] = field(default_factory=list)
    labels: list[tuple[float, str]] = field(default_factory=list)
    ticks: list[tuple[float, int]] = field(default_factory=list)
    legend: list[tuple[str, str, int]] = field(default_factory=list)
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    empty: bool = True


def case_rows(store: Store, *, limit: int = 50_000) -> list[CaseRow]:
    """Each case's current state: the day it was filed (else received), its level and department."""
    later = aliased(Prediction)
    query = (
        select(Case.created_at, Case.received_at, Prediction.risk_level, Prediction.department)
        .join(Case, Case.id == Prediction.case_row_id)
        .where(~exists().where(later.supersedes_id == Prediction.id))
        .order_by(Prediction.id.desc())
        .limit(limit)
    )
    with Session(store.engine) as session:
        rows = session.execute(query).all()
    out = []
    for created, received, level, department in rows:
        # The claimed filing time, but never after the service received the case (a claim dated ahead
        # would put it in a future period).
        when = received if created is None else min(as_utc(created), as_utc(received))
        out.append(CaseRow(display_time(when).date(), level or "none", department))
    return out


def _period(day: date, unit: str) -> date:
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _unit(rows: list[CaseRow]) -> str:
    span = (max(r.day for r in rows) - min(r.day for r in rows)).days
    return "day" if span <= 31 else "week" if span <= 7 * MAX_PERIODS else "month"


def _label(period: date, unit: str) -> str:
    return period.strftime("%Y-%m") if unit == "month" else period.strftime("%m-%d")


UNIT_NAMES = {"day": "日", "week": "周", "month": "月"}


def stacked_chart(
    rows: list[CaseRow], key: str, order: list[str], colours: dict[str, str], names: dict[str, str], title: str
) -> Chart:
    """Stacked bars of case counts per period, one colour per value of `key` (level or department)."""
    if not rows:
        return Chart(title=title, unit="")
    unit = _unit(rows)
    counts: dict[date, Counter[str]] = defaultdict(Counter)
    for row in rows:
        counts[_period(row.day, unit)][getattr(row, key)] += 1
    periods = sorted(counts)[-MAX_PERIODS:]
    peak = max(sum(counts[p].values()) for p in periods)
    plot_w, plot_h = CHART_WIDTH - LEFT - 10, CHART_HEIGHT - BOTTOM - TOP
    slot = plot_w / len(periods)
    bar_w = max(2.0, slot * 0.7)
    chart = Chart(title=title, unit=UNIT_NAMES[unit], empty=False)
    for i, period in enumerate(periods):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y = float(TOP + plot_h)
        for value in order:
            n = counts[period][value]
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            chart.bars.append(
                Bar(round(x, 1), round(y, 1), round(bar_w, 1), round(h, 1), colours[value],
                    f"{_label(period, unit)} {names.get(value, value)}: {n}")
            )
        every = max(1, len(periods) // 8)
        if i % every == 0:
            chart.labels.append((round(x + bar_w / 2, 1), _label(period, unit)))
    for fraction in (0.0, 0.5, 1.0):
        chart.ticks.append((round(TOP + plot_h * (1 - fraction), 1), round(peak * fraction)))
    totals = Counter(getattr(r, key) for r in rows if _period(r.day, unit) in set(periods))
    chart.legend = [(names.get(v, v), colours[v], totals[v]) for v in order if totals[v]]
    return chart


def level_chart(rows: list[CaseRow]) -> Chart:
    names = {"red": "红", "yellow": "黄", "green": "绿", "none": "无风险模型"}
    return stacked_chart(rows, "level", list(LEVEL_ORDER), LEVEL_COLOURS, names, "按风险等级")


def department_chart(rows: list[CaseRow]) -> Chart:
    totals = Counter(r.department for r in rows)
    order = [d for d, _ in totals.most_common()]
    colours = {d: DEPARTMENT_COLOURS[i] if i < len(DEPARTMENT_COLOURS) else "#9e9e9e" for i, d in enumerate(order)}
    return stacked_chart(rows, "department", order, colours, {}, "按部门")


@dataclass(frozen=True)
class LevelRow:
    """One row of a name x level table (a district or a department): warnings at each level."""

    name: str
    red: int
    yellow: int
    total: int


def level_table(totals: dict[str, int], pairs: dict[tuple[str, str], int], limit: int = 15) -> list[LevelRow]:
    """Rows in the order of `totals` (most first), at most `limit`: where red and yellow warnings concentrate."""
    return [LevelRow(name, pairs.get((name, "red"), 0), pairs.get((name, "yellow"), 0), n)
            for name, n in list(totals.items())[:limit]]
