"""`triage predict`: score a file of cases in batch with a registered or local model.

Scoring is CPU-bound, so cases go to worker processes in chunks small enough that every worker has
work (`chunk_size`); each worker receives the model once, warmed up before the fork (compiled scorers
built once, inherited), never once per chunk. With hot issues, the workers read chunks of cases in time
order: each case prepared once (`features.prepared`: the detector and the models read the same tokens),
its detector terms, its route and everything the risk model reads but its burst
(`TriageBundle.pending`). This process then replays each chunk through the detector as it arrives, in
order (the one step that must be sequential), and finishes the levels with the bursts
(`TriageBundle.finish`), while the workers read the next chunks.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.csv_safety import write_csv
from features.prepared import PreparedCase, as_pairs, prepare
from models.bundle import Assessment, BurstView, PendingAssessments, ReplayedBurst, TriageBundle
from models.hotspots import CaseEvent, CaseTerms, HotspotConfig, HotspotDetector, case_terms
from models.mlflow_model import assessments_frame, frame_bursts
from models.risk import BURST_COLUMNS
from training.hotspots_cli import events_from_frame, timed_events

logger = logging.getLogger(__name__)

#: Most cases per chunk; fewer when that leaves a worker idle (`chunk_size`).
CHUNK = 1000
#: Chunks waiting per worker: enough to keep it busy, few enough to bound memory.
QUEUED_PER_WORKER = 2
_worker_bundle: TriageBundle | None = None


@dataclass(frozen=True)
class Chunk:
    """Cases to assess together: their positions in the input, texts (prepared, or raw pairs for the worker
    to prepare) and bursts (None: scored as joining no burst)."""

    positions: list[int]
    cases: Sequence[PreparedCase] | Sequence[tuple[str, str]]
    bursts: list[ReplayedBurst | None] | None


def chunk_size(n: int, workers: int) -> int:
    """`CHUNK`, or less so that each worker gets about four chunks (a 1,000-case file used to be one chunk,
    and a second worker never helped)."""
    if workers <= 1:
        return CHUNK
    return max(min(50, CHUNK), min(CHUNK, math.ceil(n / (4 * workers))))


def chunk_sizes(n: int, size: int, workers: int) -> Iterator[int]:
    """The sizes of the time-ordered chunks of ``n`` cases: ``size``, then quarters of it for the last
    ``workers * size`` cases.

    Why: this process replays each chunk through the detector after a worker has read it, and the workers
    finish their last chunks together, so the replay of those is left to one core (on the 15k TipDM
    messages the last two 1,000-case replays took 0.8-1.1 s: the file ends with 5,000 undated cases, which never
    leave the detector's window). With small chunks at the end only a few hundred cases are left.
    """
    tail = max(1, size // 4) if workers > 1 else size
    left = n
    while left > 0:
        step = min(size if left > workers * size else tail, left)
        yield step
        left -= step


def _init_worker(bundle: TriageBundle | None) -> None:
    global _worker_bundle
    if bundle is not None:  # spawn start method: the bundle arrives pickled, once per worker
        _worker_bundle = bundle
    from features.text import init_tokenizer

    init_tokenizer()


def _assess_in_worker(chunk: Chunk) -> pd.DataFrame:
    assert _worker_bundle is not None, "worker started without a model"
    return _assess_chunk(_worker_bundle, chunk)


def _assess_chunk(bundle: TriageBundle, chunk: Chunk) -> pd.DataFrame:
    assessed = bundle.assess(chunk.cases, bursts=chunk.bursts, reasons=False)
    return _assessed_frame(bundle, chunk.positions, assessed, chunk.bursts)


def _assessed_frame(
    bundle: TriageBundle, positions: list[int], assessed: list[Assessment], bursts: Sequence[BurstView | None] | None
) -> pd.DataFrame:
    out = assessments_frame(bundle, assessed)
    if bursts is not None:
        # Assigned as values, so pandas infers the column's type as it does for a replayed frame's column.
        out["hot_issue_id"] = np.array([b.hot_issue_id if b else None for b in bursts], dtype=object)
    out.index = positions
    return out


@dataclass(frozen=True)
class TimedChunk:
    """Consecutive cases in time order, as raw pairs, for a worker to read (`_read_chunk`) before the replay
    places them; ``events`` stay in this process for the replay."""

    positions: list[int]
    pairs: list[tuple[str, str]]
    config: HotspotConfig
    events: list[CaseEvent] = field(compare=False, repr=False)

    def __getstate__(self) -> dict[str, object]:
        # The events are the replay's, in this process: not sent to the worker.
        return {**self.__dict__, "events": []}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)


@dataclass(frozen=True)
class ReadChunk:
    """A `TimedChunk` as a worker read it: each case's detector terms and its pending assessment."""

    positions: list[int]
    terms: list[CaseTerms]
    pending: PendingAssessments


def _timed_chunks(frame: pd.DataFrame, config: HotspotConfig, sizes: Iterable[int]) -> Iterator[TimedChunk]:
    """The cases in time order, in chunks of ``sizes`` (`chunk_sizes`; the last one takes what is left)."""
    titles, bodies = frame["title"].tolist(), frame["body"].tolist()
    wanted = iter(sizes)
    size = next(wanted, len(frame))
    positions: list[int] = []
    events: list[CaseEvent] = []
    for position, event in timed_events(frame):
        positions.append(position)
        events.append(event)
        if len(positions) == size:
            yield TimedChunk(positions, [(titles[p], bodies[p]) for p in positions], config, events)
            positions, events = [], []
            size = next(wanted, size)
    if positions:
        yield TimedChunk(positions, [(titles[p], bodies[p]) for p in positions], config, events)


def _read_chunk(bundle: TriageBundle, chunk: TimedChunk) -> ReadChunk:
    prepared = [prepare(title, body) for title, body in chunk.pairs]
    terms = [case_terms(t, b, chunk.config, p) for (t, b), p in zip(chunk.pairs, prepared, strict=True)]
    return ReadChunk(chunk.positions, terms, bundle.pending(prepared, reasons=False))


def _read_in_worker(chunk: TimedChunk) -> ReadChunk:
    assert _worker_bundle is not None, "worker started without a model"
    return _read_chunk(_worker_bundle, chunk)


def _placed_frame(
    bundle: TriageBundle, detector: HotspotDetector, events: list[CaseEvent], read: ReadChunk
) -> pd.DataFrame:
    """Replay a read chunk through the detector (its events in time order) and finish its assessments."""
    bursts: list[ReplayedBurst | None] = []
    for event, terms in zip(events, read.terms, strict=True):
        placed = detector.observe(event, terms)
        bursts.append(ReplayedBurst(placed.features(), placed.hot_issue_id))
    assessed = bundle.finish(read.pending, bursts=bursts, reasons=False)
    return _assessed_frame(bundle, read.positions, assessed, bursts)


def _file_chunks(frame: pd.DataFrame, size: int) -> Iterator[Chunk]:
    """The cases in file order, as raw pairs (each worker prepares its own), with the bursts the frame
    carries (`burst_*` and ``hot_issue_id`` columns of an earlier replay), if any."""
    for start in range(0, len(frame), size):
        part = frame.iloc[start : start + size]
        positions = list(range(start, start + len(part)))
        bursts = frame_bursts(part)
        yield Chunk(positions, as_pairs(part), bursts)


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
    hot_issues: HotspotConfig | None = None,
) -> pd.DataFrame:
    """One row per case, in input order: case_id, then department, confidence, review flag, top-3 and risk;
    ``hot_issue_id`` too with ``hot_issues`` (the detector's settings: the cases are replayed in time order
    here, overlapping the workers' scoring) or when ``cases`` carries it from an earlier replay."""
    frame = cases.reset_index(drop=True)
    size = chunk_size(len(frame), workers)
    spread = workers if len(frame) > size else 1  # one chunk or none: scored here, in one go
    jobs: Iterator[Job]
    if hot_issues is not None:
        detector = HotspotDetector(hot_issues)
        jobs = (
            Job(_read_in_worker, chunk, partial(_placed_frame, bundle, detector, chunk.events))
            for chunk in _timed_chunks(frame, hot_issues, chunk_sizes(len(frame), size, spread))
        )
    else:
        jobs = (Job(_assess_in_worker, chunk, _as_is) for chunk in _file_chunks(frame, size))
    if len(frame) == 0:
        empty = Chunk([], [], [] if hot_issues is not None or "hot_issue_id" in frame.columns else None)
        parts = [_assess_chunk(bundle, empty)]
    elif workers <= 1 or len(frame) <= size:
        parts = _run_here(bundle, jobs, on_chunk)
    else:
        parts = _run_in_pool(bundle, jobs, workers, on_chunk)
    return _joined(frame, parts)


def finish_frame(bundle: TriageBundle, cases: pd.DataFrame, pending: PendingAssessments) -> pd.DataFrame:
    """`score_frame(bundle, cases)` for a replayed frame whose cases were already read (``pending``, from
    `TriageBundle.pending` of its rows in order, without reasons): only the bursts and the levels are left,
    so no text is prepared again (the Dask engine reads each partition once, in its prepare pass)."""
    frame = cases.reset_index(drop=True)
    if len(pending.routes) != len(frame):
        raise ValueError(f"{len(pending.routes)} pending assessments for {len(frame)} cases")
    bursts = frame_bursts(frame)
    assessed = bundle.finish(pending, bursts=bursts, reasons=False)
    return _joined(frame, [_assessed_frame(bundle, list(range(len(frame))), assessed, bursts)])


def _joined(frame: pd.DataFrame, parts: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(parts).sort_index().reset_index(drop=True)
    out.insert(0, "case_id", frame["case_id"].to_numpy())  # positions are the input's rows: same order
    if "hot_issue_id" in out.columns:
        # Typed over the whole file, as one replayed frame's column is (chunks of none alone are objects).
        out["hot_issue_id"] = out["hot_issue_id"].to_numpy(dtype=object)
    return out


@dataclass(frozen=True)
class Job:
    """One chunk's work: ``work(chunk)`` in a worker (or here), then ``then(result)`` here, in chunk order."""

    work: Callable[[Any], Any]
    chunk: Any
    then: Callable[[Any], pd.DataFrame]


def _as_is(part: pd.DataFrame) -> pd.DataFrame:
    return part


def _run_here(bundle: TriageBundle, jobs: Iterable[Job], on_chunk: Callable[[int], None] | None) -> list[pd.DataFrame]:
    global _worker_bundle
    _worker_bundle = bundle
    parts: list[pd.DataFrame] = []
    try:
        for job in jobs:
            parts.append(job.then(job.work(job.chunk)))
            if on_chunk:
                on_chunk(len(parts[-1]))
    finally:
        _worker_bundle = None
    return parts


def _run_in_pool(
    bundle: TriageBundle, jobs: Iterable[Job], workers: int, on_chunk: Callable[[int], None] | None
) -> list[pd.DataFrame]:
    global _worker_bundle
    # Built now, inherited by forked workers: the compiled scorers, fitted vocabularies and booster.
    bundle.assess([("预热", "")], reasons=False)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    _worker_bundle = bundle  # inherited by forked workers without pickling
    parts: list[pd.DataFrame] = []
    try:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context(method),
            initializer=_init_worker,
            initargs=(None if method == "fork" else bundle,),
        ) as pool:
            queued: list[tuple[Job, Future[Any]]] = []

            def collect(limit: int) -> None:
                while len(queued) > limit:  # in submission order: the replay needs time order
                    job, future = queued.pop(0)
                    parts.append(job.then(future.result()))
                    if on_chunk:
                        on_chunk(len(parts[-1]))

            for job in jobs:
                queued.append((job, pool.submit(job.work, job.chunk)))
                collect(QUEUED_PER_WORKER * workers)
            collect(0)
    finally:
        _worker_bundle = None
    return parts


def write_predictions(frame: pd.DataFrame, output: Path) -> None:
    """Parquet as is; CSV through `write_csv`, since case ids come from the input file and may be formulas."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".parquet":
        frame.to_parquet(output, index=False)
    else:
        write_csv(frame, output)


