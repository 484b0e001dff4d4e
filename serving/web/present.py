"""What the pages show, computed in Python so templates only loop and print (Jinja2 escapes everything).

* `highlight`: the case text split into plain and highlighted segments from the cue offsets. Offsets
  index `features.text.case_text(title, body)` (normalised, personal numbers masked), so that is the
  text shown; the segments are split back into title and body. Templates wrap highlighted segments in
  `<mark>`; no HTML is ever built from case text here.
* `reason_views`: risk reasons in words a reviewer reads (rubric criterion names in Chinese).
* times in Beijing time, levels and priorities in Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from features.risk_cues import CRITERION_NAMES
from features.text import case_text, mask_contact_details, mask_personal_data, normalise

try:
    from zoneinfo import ZoneInfo

    DISPLAY_TZ: timezone | ZoneInfo = ZoneInfo("Asia/Shanghai")
except Exception:  # no tz database on the machine: China has no daylight saving time
    DISPLAY_TZ = timezone(timedelta(hours=8), "CST")

LEVEL_NAMES = {"red": "红", "yellow": "黄", "green": "绿"}
PRIORITY_NAMES = {"red": "红色风险", "yellow": "黄色风险", "review": "路由待复核", "other": "其他"}


@dataclass(frozen=True)
class Segment:
    """A run of case text; `criterion` set when it is a highlighted cue phrase."""

    text: str
    criterion: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class HighlightedText:
    title: list[Segment]
    body: list[Segment]
    #: Cues whose offsets did not fit the text (e.g. a prediction of an older text version).
    skipped: int


@dataclass(frozen=True)
class ReasonView:
    kind: str
    text: str
    criterion: str | None
    criterion_name: str | None
    level: str | None
    weight: float | None


def criterion_level(criterion: str | None) -> str | None:
    if not criterion:
        return None
    head = criterion.split("-", 1)[0]
    return head if head in LEVEL_NAMES else None


def criterion_label(criterion: str | None) -> str | None:
    """"红-1 危及生命或人身安全" for "red-1"; None for no criterion."""
    if not criterion:
        return None
    level = criterion_level(criterion)
    number = criterion.split("-", 1)[1] if "-" in criterion else ""
    prefix = f"{LEVEL_NAMES[level]}-{number}" if level else criterion
    name = CRITERION_NAMES.get(criterion)
    return f"{prefix} {name}" if name else prefix


def risk_reasons(reasons: Any) -> list[Mapping[str, Any]]:
    """The stored risk reasons of a prediction (`reasons["risk"]`), whatever shape the row holds."""
    if isinstance(reasons, Mapping):
        reasons = reasons.get("risk")
    return [r for r in (reasons or []) if isinstance(r, Mapping)]


def _spans(text: str, cues: Iterable[Mapping[str, Any]]) -> tuple[list[tuple[int, int, str]], int]:
    spans: list[tuple[int, int, str]] = []
    skipped = 0
    for cue in cues:
        start, end = cue.get("start"), cue.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            skipped += 1
            continue
        phrase = cue.get("text")
        if isinstance(phrase, str) and phrase and text[start:end] != phrase:
            skipped += 1  # offsets of another text version: highlighting them would mislead
            continue
        spans.append((start, end, str(cue.get("criterion") or "")))
    spans.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, criterion in spans:
        if merged and start < merged[-1][1]:  # overlapping cues: keep the first, extend it
            prev_start, prev_end, prev_criterion = merged[-1]
            merged[-1] = (prev_start, max(prev_end, end), prev_criterion)
        else:
            merged.append((start, end, criterion))
    return merged, skipped


def _segments(text: str, spans: list[tuple[int, int, str]], lo: int, hi: int) -> list[Segment]:
    """Segments of text[lo:hi], with the spans clipped to that range."""
    out: list[Segment] = []
    cursor = lo
    for start, end, criterion in spans:
        start, end = max(start, lo), min(end, hi)
        if start >= end:
            continue
        if start > cursor:
            out.append(Segment(mask_contact_details(text[cursor:start])))
        out.append(Segment(text[start:end], criterion or None, criterion_label(criterion) or "风险线索"))
        cursor = end
    if cursor < hi:
        out.append(Segment(mask_contact_details(text[cursor:hi])))
    return out


def highlight(title: str | None, body: str | None, reasons: Any) -> HighlightedText:
    """The case's normalised text, title and body apart, with every cue phrase of `reasons` marked."""
    text = case_text(title, body)
    cues = [r for r in risk_reasons(reasons) if r.get("kind") == "cue"]
    spans, skipped = _spans(text, cues)
    title_n, body_n = normalise(title), normalise(body)
    if title_n and body_n:
        title_len = len(mask_personal_data(title_n))  # masking never crosses the "。" joining the two
        return HighlightedText(
            _segments(text, spans, 0, title_len), _segments(text, spans, title_len + 1, len(text)), skipped
        )
    if title_n:
        return HighlightedText(_segments(text, spans, 0, len(text)), [], skipped)
    return HighlightedText([], _segments(text, spans, 0, len(text)), skipped)


def reason_views(reasons: Any) -> list[ReasonView]:
    """The reasons in stored order (for red and yellow: the rubric criterion and its phrases first), each
    distinct cue phrase once."""
    views: list[ReasonView] = []
    seen: set[tuple[str, str]] = set()
    for reason in risk_reasons(reasons):
        kind = str(reason.get("kind") or "")
        text = str(reason.get("text") or reason.get("phrase") or reason.get("label") or "")
        criterion = reason.get("criterion")
        if kind == "cue":
            key = (text, str(criterion))
            if key in seen:
                continue
            seen.add(key)
        weight = reason.get("weight")
        views.append(
            ReasonView(
                kind=kind,
                text=text,
                criterion=criterion if isinstance(criterion, str) else None,
                criterion_name=criterion_label(criterion if isinstance(criterion, str) else None),
                level=criterion_level(criterion if isinstance(criterion, str) else None),
                weight=float(weight) if isinstance(weight, int | float) else None,
            )
        )
    return views


def display_time(value: datetime) -> datetime:
    """A stored (UTC) time in Beijing time; naive times are taken as UTC, as the store does. A time that
    Beijing time cannot hold (near year 1 or 9999, stored before case times were range-checked) stays UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(DISPLAY_TZ)
    except OverflowError:
        return value


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`display_time` as text; " UTC" is added where it could not be shown in Beijing time."""
    if value is None:
        return ""
    shown = display_time(value)
    return shown.strftime(fmt) + ("" if shown.tzinfo is DISPLAY_TZ else " UTC")


#: The model's held-out metrics as a reviewer reads them (the key stays in the page for data scientists).
METRIC_NAMES = {
    "accuracy": "部门准确率",
    "macro_f1": "部门宏平均 F1",
    "coverage": "自动分派覆盖率",
    "auto_routed_precision": "自动分派精确率",
    "ece": "置信度校准误差（ECE）",
    "n_eval": "留出集案件数",
    "risk_red_recall": "红色风险召回率",
    "risk_red_precision": "红色风险精确率",
    "risk_macro_f1": "风险等级宏平均 F1",
    "risk_n_eval": "风险留出集案件数",
}


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def iso_local_time(value: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`local_time` of an ISO 8601 text (a model's training time), or the text as given if it is not one."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return local_time(value, fmt)
    try:
        return local_time(datetime.fromisoformat(str(value)), fmt)
    except ValueError:
        return str(value)


def percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def top_departments(top: Any) -> list[tuple[str, float]]:
    """The stored top-3 (`[{"label", "probability"}]` or `[[label, p]]`) as pairs."""
    pairs: list[tuple[str, float]] = []
    for item in top or []:
        if isinstance(item, Mapping):
            pairs.append((str(item.get("label")), float(item.get("probability") or 0.0)))
        elif isinstance(item, list | tuple) and len(item) == 2:
            pairs.append((str(item[0]), float(item[1])))
    return pairs
