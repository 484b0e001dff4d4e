"""`triage predict --engine dask`: score many files (or one big one split into parts) on a Dask cluster.

What runs where (one partition = one input file):
- Reading: on the workers, by the same loader as the single-process path (`load_partition` ->
  `load_cases`), so every error still names the file and the row. A partition is read where it is used
  and dropped after: memory is bounded by the partition size, not the dataset. With hot issues the
  prepare pass spills the loaded partition (pickle, exact) to a scratch directory next to the output
  with each case's pending assessment (`TriageBundle.pending`: route and risk inputs, from the one
  tokenisation the detector's terms also come from), and the scoring pass reads it back and deletes it:
  the loader and the text work run once per case; holding every partition in the cluster
  between the two passes (as before) made memory grow with the dataset.
- The model reaches each worker once, through a worker plugin that loads it by URI at worker start-up
  (same MLflow tracking URI as the caller), never with each partition.
- Hot issues (the detector is a sequential state machine, time order matters):
  1. prepare, parallel: each worker prepares each case of its partition once, for the detector
     (`case_terms`: words, places; the stateless half) and for the models (`TriageBundle.pending`), sorts
     it by time and spills the events, without text, to a scratch directory next to the output, in chunks;
  2. replay, sequential, in this process, while the workers prepare: a k-way merge of the sorted runs (one
     chunk per run in memory) feeds the detector in time order (then file order) with the terms already
     computed, so only idf, the burst search and the statistics run here. A quick scan of every
     partition's times (`scan_partition`, the same loader) comes first, so the merge knows the earliest
     case each partition still being prepared can hold and replays everything before it
     (`ReplayMerge`): with files in time order the replay follows the prepare pass instead of waiting
     for all of it (at 1M cases it had waited ~14 minutes, then run ~9 alone, the workers idle);
  3. scoring overlaps the replay: a partition is submitted for scoring as soon as the replay has passed
     all its rows (files in time order are scored while the replay continues), with its burst columns,
     because the risk model reads them. The output equals `attach_hot_issues` + `score_frame` in one
     process, row for row (tests/training/test_dask_predict.py).
- Writing: each worker writes its own Parquet part (`part-00000.parquet`, ... in input order).

Case ids are expected to be unique across files: a case_id repeated in another file gets its own
file's replay result (one process keeps the last one for both).
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import logging
import os
import pickle
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, LocalCluster, WorkerPlugin, get_worker

from features.prepared import prepare
from models.bundle import PENDING_BATCH, PendingAssessments, TriageBundle
from models.hotspots import CaseEvent, CaseTerms, HotspotConfig, HotspotDetector, case_terms
from models.risk import BURST_COLUMNS
from training.hotspots_cli import VOTE_COLUMNS, _missing, _text
from training.loading import DataError, load_cases
from training.predict import finish_frame, join_hot_issues, score_frame

logger = logging.getLogger(__name__)

_ROW_BITS = 32  # sequence key of a row: partition number << 32 | row within the partition
_SEQ, _TIME = "_seq", "_time_key"


#: `DataFrame.attrs` key under which a partition carries the rows its loader skipped.
SKIPPED_ATTR = "triage_skipped_rows"


@dataclass(frozen=True)
class DaskResult:
    rows: int
    needs_review: int
    partitions: int
    files: list[str]
    model_loads: dict[str, int]  # per worker: how often the model was loaded (1 = once per worker)
    scored_by: dict[str, int]  # per worker: partitions it scored
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # (file, row, reason) not scored
    # wall s from the start: scan (times read), prepare (all prepared, the replay running alongside); then
    # replay_tail (the replay after the last partition), score_tail; replay_busy: the driver's replay time
    phases: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def expand_inputs(spec: str) -> list[str]:
    """Files named by a path, a glob or any fsspec URL, sorted (the order is the file order of the replay)."""
    fs, _, paths = fsspec.core.get_fs_token_paths(spec)
    if _is_local(spec):
        files = sorted(p for p in paths if Path(p).is_file())
        if not files and not any(c in spec for c in "*?["):
            return [spec.removeprefix("file://")]  # let the loader say why (missing, a directory...)
    else:
        files = sorted(fs.unstrip_protocol(p) for p in paths if not fs.isdir(p))
    if not files:
        raise DataError(spec, "no file matches")
    return files


def load_partition(url: str, index: int, encoding: str = "utf-8") -> pd.DataFrame:
    """One input file as the loader reads it, plus a sequence key that keeps file order across partitions.

    A remote file is copied to a temporary local file first; errors still name the URL.
    """
    if _is_local(url):
        loaded = load_cases([url.removeprefix("file://")], training=False, encoding=encoding, with_keys=False)
    else:
        with tempfile.TemporaryDirectory(prefix="triage-part-") as tmp:
            local = Path(tmp) / Path(url.rstrip("/")).name
            try:
                with fsspec.open(url, "rb") as src:
                    local.write_bytes(src.read())
            except (OSError, ValueError) as exc:
                raise DataError(url, f"cannot read ({type(exc).__name__})") from None
            try:
                loaded = load_cases([local], training=False, encoding=encoding, with_keys=False)
            except DataError as exc:
                raise DataError(url, exc.reason, column=exc.column, row=exc.row) from None
            loaded.frame["source_file"] = url
    frame = loaded.frame
    frame[_SEQ] = (np.int64(index) << _ROW_BITS) + np.arange(len(frame), dtype=np.int64)
    # Rows the loader read but could not use travel with the partition, to be reported, never dropped silently.
    frame.attrs[SKIPPED_ATTR] = [(url, r.row, r.reason) for r in loaded.report.rejected]
    return frame


# --------------------------------------------------------------------------------------------------
# The model, once per worker
# --------------------------------------------------------------------------------------------------


class ModelLoadError(RuntimeError):
    """A worker could not load the model (wrong URI, or a tracking server the workers cannot reach)."""


class ModelPlugin(WorkerPlugin):
    """Loads the model by URI when a worker starts (or joins), so partitions carry no model."""

    def __init__(self, model_uri: str, tracking_uri: str | None, registry_uri: str | None = None) -> None:
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.name = f"triage-model-{uuid.uuid4().hex[:8]}"
        self.bundle: TriageBundle | None = None
        self.loads = 0
        self.partitions = 0
        self.error: str | None = None

    def setup(self, worker: Any) -> None:
        from features.text import init_tokenizer
        from models.mlflow_model import load_model, needs_mlflow

        if needs_mlflow(self.model_uri):  # a bundle on disk loads without MLflow (~50 MB less per worker)
            import mlflow

            if self.tracking_uri:
                os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
                mlflow.set_tracking_uri(self.tracking_uri)
            if self.registry_uri:
                mlflow.set_registry_uri(self.registry_uri)
        init_tokenizer()
        try:
            self.bundle = load_model(self.model_uri).bundle
        except Exception as exc:  # reported by the first partition, as one line, not a worker traceback
            self.error = f"could not load model '{self.model_uri}' on worker: {type(exc).__name__}: {exc}"
            return
        self.loads += 1
        logger.info("worker %s loaded model %s", worker.address, self.model_uri)

    def teardown(self, worker: Any) -> None:
        self.bundle = None


def _give_back_memory() -> None:
    """Return the heap a partition freed to the system (glibc keeps it otherwise, and a worker's resident size
    creeps up partition after partition), as Dask's guide to unreleased worker memory does."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _worker_plugin(name: str) -> ModelPlugin:
    plugin = get_worker().plugins[name]
    assert isinstance(plugin, ModelPlugin)
    if plugin.bundle is None:
        raise ModelLoadError(plugin.error or "worker started without a model")
    return plugin


def _plugin_counts(name: str, dask_worker: Any = None) -> tuple[int, int]:
    plugin = dask_worker.plugins[name]
    return plugin.loads, plugin.partitions


def _plugin_error(name: str, dask_worker: Any = None) -> str | None:
    return dask_worker.plugins[name].error


def _as_table(frame: pd.DataFrame) -> pa.Table:
    """Columns that are all missing in one part are typed as strings, so every part has one schema."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(table.schema):
        if pa.types.is_null(column.type):
            table = table.set_column(i, pa.field(column.name, pa.string()), table.column(i).cast(pa.string()))
    return table


def score_partition(
    url: str,
    index: int,
    encoding: str,
    bursts: pd.DataFrame | None,
    plugin_name: str,
    output: str,
    spilled: str | None = None,
) -> tuple[int, int, list[tuple[str, int, str]]]:
    """Read one partition, score it with this worker's model and write it as one Parquet part.

    The partition is read here rather than passed in, so a worker holds one partition at a time and
    nothing stays in cluster memory between the replay and the scoring (memory bounded by partition size).
    `spilled`: the prepare pass's spill of the partition: the loaded frame and its pending assessments
    (routes and risk inputs: each text was prepared once, there); only the bursts and the levels are left
    (deleted once read). Returns (rows, needs review, rows the loader skipped as (file, row, reason)).
    """
    plugin = _worker_plugin(plugin_name)
    plugin.partitions += 1
    pending: PendingAssessments | None = None
    if spilled is None:
        cases = load_partition(url, index, encoding)
    else:
        with fsspec.open(spilled, "rb") as fh:
            cases, pending = pickle.load(fh)  # our own spill file, from this run
        fs, _, (path,) = fsspec.core.get_fs_token_paths(spilled)
        fs.rm(path)
    skipped = list(cases.attrs.get(SKIPPED_ATTR, []))
    cases = cases.drop(columns=[_SEQ]).reset_index(drop=True)
    if bursts is not None:
        stats = {cid: dict(zip(BURST_COLUMNS, values, strict=True))
                 for cid, values in zip(bursts["case_id"], bursts[list(BURST_COLUMNS)].to_numpy(), strict=True)}
        hot = dict(zip(bursts["case_id"], bursts["hot_issue_id"], strict=True))
        cases = join_hot_issues(cases, stats, hot)
    assert plugin.bundle is not None
    if pending is None:
        scored = score_frame(plugin.bundle, cases, workers=1)
    else:
        scored = finish_frame(plugin.bundle, cases, pending)
    del cases, pending
    with fsspec.open(f"{output.rstrip('/')}/part-{index:05d}.parquet", "wb") as fh:
        pq.write_table(_as_table(scored), fh)
    counts = len(scored), int(scored["needs_review"].sum()) if len(scored) else 0, skipped
    del scored
    _give_back_memory()
    return counts


# --------------------------------------------------------------------------------------------------
# Hot issues: parallel tokenisation and sort, sequential replay (an external merge sort)
# --------------------------------------------------------------------------------------------------

_NAT = np.iinfo(np.int64).min
_SPILL_CHUNK = 256  # records a spill chunk holds; the driver keeps one chunk per run in memory


@dataclass(frozen=True)
class Prepared:
    """What the driver learns of one partition in the prepare pass (its times came from the scan): no text."""

    index: int
    rows: int
    head: str  # spill file of the leading undated rows (file order)
    body: str  # spill file of the other rows, sorted by (filled time, row)
    cases: str  # the loaded partition and its pending assessments, pickled, for the scoring pass


# One replay record: (time key or None for a head row, row in partition, event without text, its terms)
_Record = tuple[int | None, int, CaseEvent, CaseTerms]


def _write_run(url: str, records: Iterator[_Record]) -> None:
    """Records as a stream of pickled chunks, so the reader can hold one chunk, not the run."""
    with fsspec.open(url, "wb") as fh:
        chunk: list[_Record] = []
        for record in records:
            chunk.append(record)
            if len(chunk) == _SPILL_CHUNK:
                pickle.dump(chunk, fh, protocol=pickle.HIGHEST_PROTOCOL)
                chunk = []
        if chunk:
            pickle.dump(chunk, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _read_run(url: str) -> Iterator[_Record]:
    """A spill run chunk by chunk; the file is reopened per chunk, so hundreds of runs hold no handles."""
    offset = 0
    while True:
        with fsspec.open(url, "rb") as fh:
            fh.seek(offset)
            try:
                chunk: list[_Record] = pickle.load(fh)  # our own spill file, from this run
            except EOFError:
                return
            offset = fh.tell()
        yield from chunk


def _time_keys(frame: pd.DataFrame) -> tuple[np.ndarray, int, int]:
    """(replay time of each row, leading undated rows, time of the last dated row or `_NAT`).

    An undated row takes the time of the dated row before it in file order; the leading undated rows
    (whose time comes from earlier files) keep `_NAT` here.
    """
    times = frame["created_at"].astype("datetime64[ns]").to_numpy().view("int64")
    dated = np.flatnonzero(times != _NAT)
    lead = int(dated[0]) if len(dated) else len(frame)
    last_dated = int(times[dated[-1]]) if len(dated) else _NAT
    filled = np.maximum.accumulate(np.where(times != _NAT, np.arange(len(times)), -1)) if len(times) else times
    return times[np.maximum(filled, 0)], lead, last_dated


@dataclass(frozen=True)
class PartitionTimes:
    """Where a partition's rows fall in replay order, learnt before it is prepared (`scan_partition`)."""

    index: int
    lead_undated: int
    first_dated: int  # earliest dated time (ns), `_NAT` if none
    last_dated: int  # time of the last dated row in file order, `_NAT` if none


def scan_partition(url: str, index: int, encoding: str) -> PartitionTimes:
    """Read one partition for its times only, so the replay can start before every partition is prepared.

    The partition is read by the same loader as in `prepare_partition` (the same rows and times, exactly);
    reading costs ~1.5% of preparing it.
    """
    return partition_times(index, load_partition(url, index, encoding))


def partition_times(index: int, frame: pd.DataFrame) -> PartitionTimes:
    keys, lead, last_dated = _time_keys(frame)
    first = int(keys[lead:].min()) if lead < len(frame) else _NAT
    return PartitionTimes(index, lead, first, last_dated)


def prepare_partition(
    url: str, index: int, encoding: str, config: HotspotConfig, scratch: str, plugin_name: str
) -> Prepared:
    """The stateless half of the replay, on a worker: read one partition, prepare each case once (the
    detector's terms, `case_terms`, and everything the models read but the bursts, `TriageBundle.pending`),
    sort by time and spill the events (no text) to `scratch`, and the pending assessments for scoring.

    Undated rows take the time of the dated row before them in file order (as `events_from_frame` does);
    the leading undated rows of a file depend on earlier files, so they form their own run, keyed later.
    """
    try:
        return _prepare_and_spill(url, index, encoding, config, scratch, plugin_name)
    finally:
        _give_back_memory()  # once the partition's objects are gone


def _prepare_and_spill(
    url: str, index: int, encoding: str, config: HotspotConfig, scratch: str, plugin_name: str
) -> Prepared:
    plugin = _worker_plugin(plugin_name)
    assert plugin.bundle is not None
    frame = load_partition(url, index, encoding)
    # Read in parts of `PENDING_BATCH` cases: a prepared case (its texts and tokens) is ~20 KB, so a whole
    # 20,000-case part held at once took ~400 MB per worker; its detector terms are what outlives the part.
    terms: list[CaseTerms] = []
    parts: list[PendingAssessments] = []
    pairs = list(zip(frame["title"], frame["body"], strict=True))
    for start in range(0, len(pairs), PENDING_BATCH):
        prepared = [prepare(_text(t), _text(b)) for t, b in pairs[start : start + PENDING_BATCH]]
        terms += [case_terms(case.title, case.body, config, case) for case in prepared]
        parts.append(plugin.bundle.pending(prepared, reasons=False))
    del pairs
    keys, lead, _ = _time_keys(frame)
    body_rows = lead + np.lexsort((np.arange(lead, len(frame)), keys[lead:]))
    vote_column = next((c for c in VOTE_COLUMNS if c in frame.columns), None)
    votes = pd.to_numeric(frame[vote_column], errors="coerce") if vote_column else None
    created = frame["created_at"]

    def records(rows: np.ndarray, keyed: bool) -> Iterator[_Record]:
        for row in rows.tolist():
            vote = votes.iat[row] if votes is not None else None
            when = created.iat[row]
            reporter = frame["reporter_id"].iat[row]
            event = CaseEvent(
                case_id=str(frame["case_id"].iat[row]),
                created_at=None if pd.isna(when) else pd.Timestamp(when).to_pydatetime(),
                reporter_id=None if _missing(reporter) else str(reporter),
                votes=None if vote is None or _missing(vote) else int(vote),
            )
            yield (int(keys[row]) if keyed else None), row, event, terms[row]

    stem = f"{scratch.rstrip('/')}/run-{index:05d}"
    _write_run(f"{stem}-head.pkl", records(np.arange(lead), keyed=False))
    _write_run(f"{stem}-body.pkl", records(body_rows, keyed=True))
    # The loader and the models' reading of each text are kept for the scoring pass, not run twice.
    pending = PendingAssessments.concat(parts) if parts else plugin.bundle.pending([], reasons=False)
    with fsspec.open(f"{stem}-cases.pkl", "wb") as fh:
        pickle.dump((frame, pending), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return Prepared(index, len(frame), f"{stem}-head.pkl", f"{stem}-body.pkl", f"{stem}-cases.pkl")


_Head = tuple[int, int, int, CaseEvent, CaseTerms, Iterator[_Record], int | None]


class ReplayMerge:
    """The replay order of every case (time, then file order), merged from the partitions' sorted spill runs
    as the partitions are prepared, so the detector works while the workers still prepare.

    Built from every partition's `PartitionTimes`, it knows the earliest key each partition not prepared yet
    can hold; `ready` yields the cases that come before all of them, in order, and stops there. Once every
    partition is added it yields the rest. One chunk per run is held, never the dataset.
    """

    def __init__(self, scans: Sequence[PartitionTimes]) -> None:
        self._carry: dict[int, int] = {}  # time the leading undated rows of a partition take
        self._floor: dict[int, int] = {}  # partition not added yet -> earliest key of its rows
        carry = _NAT
        for scan in sorted(scans, key=lambda t: t.index):
            self._carry[scan.index] = carry
            keys = ([carry] if scan.lead_undated else []) + ([scan.first_dated] if scan.first_dated != _NAT else [])
            if keys:
                self._floor[scan.index] = min(keys)
            if scan.last_dated != _NAT:
                carry = scan.last_dated
        self._heap: list[_Head] = []

    def add(self, index: int, head: Iterator[_Record], body: Iterator[_Record]) -> None:
        """A prepared partition's runs: its leading undated rows (file order) and the rest (sorted)."""
        self._floor.pop(index, None)
        self._push(head, index, self._carry[index])
        self._push(body, index, None)

    def _push(self, run: Iterator[_Record], index: int, head_key: int | None) -> None:
        for key, row, event, terms in run:
            heapq.heappush(self._heap, ((head_key if key is None else key), index, row, event, terms, run, head_key))
            return

    def ready(self) -> Iterator[tuple[int, int, CaseEvent, CaseTerms]]:
        """(partition, row, event, terms) of each case that no partition still to come can precede."""
        bound = min(((key, p) for p, key in self._floor.items()), default=None)
        heap = self._heap
        while heap and (bound is None or (heap[0][0], heap[0][1]) < bound):
            _, index, row, event, terms, run, head_key = heap[0]
            for key, next_row, next_event, next_terms in run:
                heapq.heapreplace(heap, ((head_key if key is None else key), index, next_row, next_event,
                                         next_terms, run, head_key))
                break
            else:
                heapq.heappop(heap)
            yield index, row, event, terms


def _bursts_frame(ids: list[str], stats: list[dict[str, float]], hot: list[str | None]) -> pd.DataFrame:
    """One partition's burst columns by case_id (a case_id seen twice keeps its last replay result,
    as `join_hot_issues` does in one process)."""
    last = {cid: i for i, cid in enumerate(ids)}
    keep = list(last.values())
    frame = pd.DataFrame({"case_id": pd.Series([ids[i] for i in keep], dtype=object)})
    for column in BURST_COLUMNS:
        frame[column] = [stats[i].get(column, 0.0) for i in keep]
    frame["hot_issue_id"] = pd.Series([hot[i] for i in keep], dtype=object)
    return frame


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int, *, timeout: float = 5.0) -> Iterator[Client]:
    """A client of the given scheduler, or of a LocalCluster started (and closed) here."""
    if scheduler:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
        return
    with (
        # Arrow's own allocator keeps what a partition's read freed (~100 MB a worker); the system one gives it back.
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=logging.WARNING, env={"ARROW_DEFAULT_MEMORY_POOL": "system"}) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def predict_dask(
    client: Client,
    model_uri: str,
    inputs: str | Sequence[str],
    output: str | Path,
    *,
    hot_issues: HotspotConfig | None = None,
    encoding: str = "utf-8",
    tracking_uri: str | None = None,
) -> DaskResult:
    """Read, score and write every partition on `client`'s cluster; Parquet parts in `output`."""
    import dask
    import mlflow

    files = expand_inputs(inputs) if isinstance(inputs, str) else [str(p) for p in inputs]
    out = str(output)
    fs, _, (root,) = fsspec.core.get_fs_token_paths(out)
    fs.makedirs(root, exist_ok=True)
    plugin = ModelPlugin(model_uri, tracking_uri or mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    client.register_plugin(plugin)
    # Partitions stay the loader's plain pandas objects (no pyarrow strings): the same values as one process.
    with client.as_current(), dask.config.set({"dataframe.convert-string": False}):
        try:
            counts, loads, phases = _run(client, plugin, files, out, hot_issues, encoding)
        finally:
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(plugin.name)
    rows = sum(c[0] for c in counts)
    skipped = [entry for c in counts for entry in c[2]]
    logger.info("dask scoring: %d file(s), %d rows written to %s, %d skipped", len(files), rows, out, len(skipped))
    logger.info("dask phases (s): %s", ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    return DaskResult(rows=rows, needs_review=sum(c[1] for c in counts), partitions=len(files), files=files,
                      model_loads={w: c[0] for w, c in loads.items()}, scored_by={w: c[1] for w, c in loads.items()},
                      skipped=skipped, phases=phases)


def _run(
    client: Client, plugin: ModelPlugin, files: list[str], out: str, hot_issues: HotspotConfig | None, encoding: str
) -> tuple[list[tuple[int, int, list[tuple[str, int, str]]]], dict[str, tuple[int, int]], dict[str, float]]:
    from distributed import as_completed

    errors = {e for e in client.run(_plugin_error, plugin.name).values() if e}
    if errors:  # before any partition is read: one clear line instead of a failed task per partition
        raise ModelLoadError(sorted(errors)[0])
    n = len(files)
    phases: dict[str, float] = {}
    started = time.perf_counter()
    if hot_issues is None:
        done = client.map(score_partition, files, range(n), [encoding] * n, [None] * n, [plugin.name] * n,
                          [out] * n, pure=False)
        counts = client.gather(done)
        phases["score"] = time.perf_counter() - started
        return counts, client.run(_plugin_counts, plugin.name), phases

    scratch = f"{out.rstrip('/')}/_replay-{uuid.uuid4().hex[:8]}"
    fs, _, (scratch_root,) = fsspec.core.get_fs_token_paths(scratch)
    fs.makedirs(scratch_root, exist_ok=True)
    scans: list[Any] = []
    futures: list[Any] = []
    done: list[Any] = []
    try:
        # Each partition's times first (a fast read), so the replay knows which cases no later partition can
        # precede and runs while the others are prepared; scoring jumps the queue to free the spill early.
        scans = client.map(scan_partition, files, range(n), [encoding] * n, pure=False, priority=2)
        futures = client.map(prepare_partition, files, range(n), [encoding] * n, [hot_issues] * n,
                             [scratch] * n, [plugin.name] * n, pure=False)
        merge = ReplayMerge(client.gather(scans))
        scans = []
        phases["scan"] = time.perf_counter() - started
        remaining: dict[int, int] = {}
        by_index: dict[int, Prepared] = {}
        collected: dict[int, tuple[list[str], list[dict[str, float]], list[str | None]]] = {}
        detector = HotspotDetector(hot_issues)
        replaying = 0.0

        def submit(p: int) -> None:
            ids, stats, hot = collected.pop(p, ([], [], []))
            bursts = client.scatter(_bursts_frame(ids, stats, hot))
            done.append(client.submit(score_partition, files[p], p, encoding, bursts, plugin.name, out,
                                      by_index[p].cases, pure=False, priority=1))

        def replay() -> None:
            for p, _, event, terms in merge.ready():
                assignment = detector.observe(event, terms)
                ids, all_stats, all_hot = collected.setdefault(p, ([], [], []))
                ids.append(event.case_id)
                all_stats.append(assignment.features())
                all_hot.append(assignment.hot_issue_id)
                remaining[p] -= 1
                if remaining[p] == 0:
                    submit(p)

        for future in as_completed(futures):
            part: Prepared = future.result()
            future.release()
            by_index[part.index], remaining[part.index] = part, part.rows
            if part.rows == 0:
                submit(part.index)
            merge.add(part.index, _read_run(part.head), _read_run(part.body))
            began = time.perf_counter()
            replay()
            replaying += time.perf_counter() - began
        phases["prepare"] = time.perf_counter() - started
        began = time.perf_counter()
        replay()  # what the last partition held back
        replaying += time.perf_counter() - began
        phases["replay_tail"] = time.perf_counter() - started - phases["prepare"]
        phases["replay_busy"] = replaying
        counts = client.gather(done)
    except BaseException:
        # A bad file or a failed worker: the partitions still queued or running would write to the scratch
        # folder removed below (and hold the cluster) for nothing.
        with contextlib.suppress(Exception):
            client.cancel([*scans, *futures, *done])
        raise
    finally:
        with contextlib.suppress(OSError):
            fs.rm(scratch_root, recursive=True)
    phases["score_tail"] = time.perf_counter() - started - phases["prepare"] - phases["replay_tail"]
    return counts, client.run(_plugin_counts, plugin.name), phases
