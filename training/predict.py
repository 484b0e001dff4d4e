"""`triage predict`: score a file of cases in batch with a registered or local model.

Scoring is CPU-bound pure Python (jieba), so large files are split into chunks scored by worker
processes; each worker receives the model once (inherited on fork, or unpickled once per worker),
never once per chunk.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from features.csv_safety import write_csv
from models.bundle import TriageBundle
from models.hotspots import CaseEvent, HotspotConfig, HotspotDetector
from models.mlflow_model import routes_frame
from models.risk import BURST_COLUMNS
from training.hotspots_cli import events_from_frame
from training.loading import DataError

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".parquet")
CHUNK = 1000
_worker_bundle: TriageBundle | None = None


def _init_worker(bundle: TriageBundle | None) -> None:
    global _worker_bundle
    if bundle is not None:  # spawn start method: the bundle arrives pickled, once per worker
        _worker_bundle = bundle
    from features.text import init_tokenizer

    init_tokenizer()


def _score_chunk(chunk: pd.DataFrame) -> pd.DataFrame:
    assert _worker_bundle is not None, "worker started without a model"
    return _route_chunk(_worker_bundle, chunk)


def _route_chunk(bundle: TriageBundle, chunk: pd.DataFrame) -> pd.DataFrame:
    routed = routes_frame(bundle, chunk.reset_index(drop=True))
    routed.insert(0, "case_id", chunk["case_id"].to_numpy())
    if "hot_issue_id" in chunk.columns:
        routed["hot_issue_id"] = chunk["hot_issue_id"].to_numpy()
    return routed


def attach_hot_issues(cases: pd.DataFrame, config: HotspotConfig) -> pd.DataFrame:
    """Replay the cases in time order through a fresh hot-issue detector.

    Adds each case's burst statistics at intake (the `burst_*` columns the risk model reads: only cases
    before it count, no look-ahead) and `hot_issue_id` (the burst, when it holds two cases or more by
    then). Sequential by nature; scoring afterwards can run in parallel.
    """
    stats, hot = replay_hot_issues(events_from_frame(cases), config)
    return join_hot_issues(cases, stats, hot)


def replay_hot_issues(
    events: Iterable[CaseEvent], config: HotspotConfig
) -> tuple[dict[str, dict[str, float]], dict[str, str | None]]:
    """Burst statistics and hot-issue id per case_id, from events already in time order.

    Shared by `attach_hot_issues` and the Dask engine, which streams the events partition by partition.
    """
    detector = HotspotDetector(config)
    stats: dict[str, dict[str, float]] = {}
    hot: dict[str, str | None] = {}
    for event in events:
        assignment = detector.observe(event)
        stats[event.case_id], hot[event.case_id] = assignment.features(), assignment.hot_issue_id
    return stats, hot


def join_hot_issues(
    cases: pd.DataFrame, stats: Mapping[str, Mapping[str, float]], hot: Mapping[str, str | None]
) -> pd.DataFrame:
    """`cases` with the `burst_*` columns and `hot_issue_id` of a replay (cases it never saw: no burst)."""
    out = cases.copy()
    ids = out["case_id"].astype(str)
    for column in BURST_COLUMNS:
        out[column] = [stats.get(i, {}).get(column, 0.0) for i in ids]
    out["hot_issue_id"] = pd.Series([hot.get(i) for i in ids], index=out.index, dtype=object)
    return out


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def score_frame(
    bundle: TriageBundle,
    cases: pd.DataFrame,
    on_chunk: Callable[[int], None] | None = None,
    *,
    workers: int = 1,
) -> pd.DataFrame:
    """One row per case, in input order: case_id, then department, confidence, review flag, top-3."""
    chunks = [cases.iloc[start : start + CHUNK] for start in range(0, len(cases), CHUNK)]
    if not chunks:
        return _route_chunk(bundle, cases.iloc[:0])
    parts: list[pd.DataFrame] = []
    if workers <= 1 or len(chunks) == 1:
        for chunk in chunks:
            parts.append(_route_chunk(bundle, chunk))
            if on_chunk:
                on_chunk(len(chunk))
        return pd.concat(parts, ignore_index=True)

    global _worker_bundle
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    _worker_bundle = bundle  # inherited by forked workers without pickling
    try:
        with ProcessPoolExecutor(
            max_workers=min(workers, len(chunks)),
            mp_context=mp.get_context(method),
            initializer=_init_worker,
            initargs=(None if method == "fork" else bundle,),
        ) as pool:
            for chunk, part in zip(chunks, pool.map(_score_chunk, chunks), strict=True):
                parts.append(part)
                if on_chunk:
                    on_chunk(len(chunk))
    finally:
        _worker_bundle = None
    return pd.concat(parts, ignore_index=True)


def write_predictions(frame: pd.DataFrame, output: Path) -> None:
    """Parquet as is; CSV through `write_csv`, since case ids come from the input file and may be formulas."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".parquet":
        frame.to_parquet(output, index=False)
    else:
        write_csv(frame, output)


def check_output_path(output: Path) -> None:
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(output, f"unsupported output type '{output.suffix}'; use one of {', '.join(OUTPUT_SUFFIXES)}")
