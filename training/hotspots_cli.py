"""Replay a grievance file through the hot-issue detector and write the alerts it raises.

`replay_file` backs the `triage hotspots --input PATH --output alerts.json` command. Logs carry counts
only, never case text.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from models.hotspots import Alert, CaseEvent, HotspotConfig, HotspotDetector
from training.loading import load_cases

logger = logging.getLogger(__name__)

#: Source columns holding a case's votes (likes), first match wins.
VOTE_COLUMNS = ("votes", "点赞数", "点赞", "likes")


def events_from_frame(frame: pd.DataFrame) -> Iterator[CaseEvent]:
    """Cases of a `load_cases` frame as detector events, in time order (see `timed_events`)."""
    for _, event in timed_events(frame):
        yield event


def timed_events(frame: pd.DataFrame) -> Iterator[tuple[int, CaseEvent]]:
    """(row position, detector event) of every case of a `load_cases` frame, in time order.

    The sort is stable; a case without a time takes the time of the case before it in the file (the
    detector's own rule), so undated cases keep their place in file order; undated cases before the
    first dated one come first.
    """
    times = frame["created_at"].reset_index(drop=True).ffill()
    order = times.sort_values(kind="stable", na_position="first").index
    vote_column = next((c for c in VOTE_COLUMNS if c in frame.columns), None)
    votes = (
        pd.to_numeric(frame[vote_column], errors="coerce").tolist()
        if vote_column
        else [float("nan")] * len(frame)
    )
    ids, titles, bodies = frame["case_id"].tolist(), frame["title"].tolist(), frame["body"].tolist()
    created_at, reporters = frame["created_at"].tolist(), frame["reporter_id"].tolist()
    for i in order:
        created, vote = created_at[i], votes[i]
        yield int(i), CaseEvent(
            case_id=str(ids[i]),
            created_at=None if pd.isna(created) else pd.Timestamp(created).to_pydatetime(),
            title=_text(titles[i]),
            body=_text(bodies[i]),
            reporter_id=None if _missing(reporters[i]) else str(reporters[i]),
            votes=None if _missing(vote) else int(vote),
        )


def replay_file(
    input_path: str | Path,
    output_path: str | Path | None,
    config: HotspotConfig | None = None,
    *,
    encoding: str = "utf-8",
) -> list[Alert]:
    """Read a CSV / TSV / XLSX / Parquet grievance file, replay it in time order, write the alerts as a
    JSON list (each with the time it was first raised, level, reason, keywords, place, first and last
    case, member case ids and the burst's figures) and return them. `output_path` None: write nothing.
    """
    loaded = load_cases([input_path], training=False, encoding=encoding)
    detector = HotspotDetector(config)
    alerts = detector.replay(events_from_frame(loaded.frame))
    if output_path is not None:
        payload: list[dict[str, Any]] = [a.to_dict() for a in alerts]
        Path(output_path).write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    logger.info(
        "hot-issue replay: %d cases, %d alerts (%d red)",
        len(loaded.frame),
        len(alerts),
        sum(a.level == "red" for a in alerts),
    )
    return alerts


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return bool(pd.isna(value)) if not isinstance(value, str) else not value.strip()


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)
