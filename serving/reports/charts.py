"""The report's charts, drawn by matplotlib as SVG with the glyphs as paths and inlined as data URIs.

Paths, not text, so a chart shows the same Chinese labels wherever the file is opened (no font needed on
the reader's machine) and the HTML stays one file; a data URI, since the pages' Content-Security-Policy
allows `img-src data:` but no inline styles, which an inline `<svg>` from matplotlib carries. matplotlib's
global settings are not thread-safe, so charts are drawn one at a time under a lock.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

logger = logging.getLogger(__name__)

LEVEL_ORDER = ("red", "yellow", "green", "none")
LEVEL_NAMES = {"red": "红色", "yellow": "黄色", "green": "绿色", "none": "无风险等级"}
LEVEL_COLOURS = {"red": "#c62828", "yellow": "#f9a825", "green": "#2e7d32", "none": "#9e9e9e"}
#: Fonts with Chinese glyphs, in order of preference (Debian: fonts-wqy-microhei, fonts-noto-cjk).
CJK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "SimHei",
             "Microsoft YaHei", "PingFang SC")
TOP_N = 10
_lock = threading.Lock()


@cache
def cjk_font() -> list[str]:
    """The first installed font family with Chinese glyphs, then DejaVu Sans for the rest."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    chosen = next((name for name in CJK_FONTS if name in installed), None)
    if chosen is None:
        logger.warning("no font with Chinese glyphs found for the report charts (install fonts-wqy-microhei)")
        return ["DejaVu Sans"]
    return [chosen, "DejaVu Sans"]


def _data_uri(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue().encode("utf-8")).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    return figure


def _draw(build) -> str:  # type: ignore[no-untyped-def]
    rc = {"font.family": cjk_font(), "svg.fonttype": "path", "axes.unicode_minus": False, "font.size": 9,
          "svg.hashsalt": "triage-report"}  # a fixed salt: the same figures give the same file
    with _lock, matplotlib.rc_context(rc):
        figure = build()
        return _data_uri(figure)


def level_comparison(current: Mapping[str, int], previous: Mapping[str, int], current_name: str,
                     previous_name: str) -> str:
    """Grouped bars: cases per level, this period beside the previous one."""
    def build() -> Figure:
        figure = _figure(5.2, 2.6)
        ax = figure.subplots()
        xs = range(len(LEVEL_ORDER))
        width = 0.38
        now = [current.get(lv, 0) for lv in LEVEL_ORDER]
        before = [previous.get(lv, 0) for lv in LEVEL_ORDER]
        ax.bar([x - width / 2 for x in xs], before, width, color="#bdbdbd", label=previous_name)
        bars = ax.bar([x + width / 2 for x in xs], now, width, color=[LEVEL_COLOURS[lv] for lv in LEVEL_ORDER],
                      label=current_name)
        ax.bar_label(bars, fontsize=8)
        ax.set_xticks(list(xs), [LEVEL_NAMES[lv] for lv in LEVEL_ORDER])
        ax.set_ylabel("案件数")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=8, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        ax.spines[["top", "right"]].set_visible(False)
        return figure

    return _draw(build)


def daily_levels(by_day: Mapping[date, Mapping[str, int]]) -> str | None:
    """Stacked bars: cases per day by level; None when the window has no case (an empty chart says nothing)."""
    if not any(sum(levels.values()) for levels in by_day.values()):
        return None

    def build() -> Figure:
        days = sorted(by_day)
        figure = _figure(7.0, 2.6)
        ax = figure.subplots()
        bottom = [0] * len(days)
        for level in LEVEL_ORDER:
            values = [by_day[d].get(level, 0) for d in days]
            ax.bar(range(len(days)), values, 0.7, bottom=bottom, color=LEVEL_COLOURS[level], label=LEVEL_NAMES[level])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        every = max(1, len(days) // 10)
        ax.set_xticks(range(0, len(days), every), [days[i].strftime("%m-%d") for i in range(0, len(days), every)])
        ax.set_ylabel("案件数")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=8, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        ax.spines[["top", "right"]].set_visible(False)
        return figure

    return _draw(build)


def ranked_levels(
    pairs: Mapping[tuple[str, str], int], levels: Sequence[str] = ("red", "yellow")
) -> str | None:
    """Horizontal stacked bars of the `TOP_N` names (departments or districts) with most cases at `levels`;
    None when no case is at those levels."""
    totals: dict[str, int] = {}
    for (name, level), n in pairs.items():
        if level in levels and n:
            totals[name] = totals.get(name, 0) + n
    if not totals:
        return None

    def build() -> Figure:
        names = [n for n, _ in sorted(totals.items(), key=lambda p: (-p[1], p[0]))[:TOP_N]][::-1]
        figure = _figure(5.2, 0.6 + 0.28 * max(3, len(names)))
        ax = figure.subplots()
        left = [0] * len(names)
        for level in levels:
            values = [pairs.get((name, level), 0) for name in names]
            ax.barh(range(len(names)), values, 0.6, left=left, color=LEVEL_COLOURS[level], label=LEVEL_NAMES[level])
            left = [a + v for a, v in zip(left, values, strict=True)]
        ax.set_yticks(range(len(names)), [("未识别区县" if n == "unknown" else n) for n in names])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=8, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        ax.spines[["top", "right"]].set_visible(False)
        return figure

    return _draw(build)
