"""`triage predict --engine dask`: score many files (or one big one split into parts) on a Dask cluster.

What runs where:
- Reading: one partition per input file, read on the workers by the same loader as the single-process
  path (`load_cases`), so every error still names the file and the row.
- Scoring: in parallel, one task per partition; the model reaches each worker once, through a worker
  plugin that loads it by URI at worker start-up (same MLflow tracking URI as the caller), never with
  each partition.
- Hot issues: the detector is a sequential state machine, so the replay runs in this process, in time
  order. Only the sort keys (time, file position: 16 bytes a case) come here whole; the text for the
  replay (case_id, time, title, body, reporter, votes) is pulled from the workers in time order, one
  chunk at a time. Each partition then gets its burst columns before it is scored, because the risk model
  reads them, so the output equals the single-process `attach_hot_issues` + `score_frame`.
- Writing: each worker writes its own Parquet part (`part-00000.parquet`, ... in input order).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
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

from models.bundle import TriageBundle
from models.hotspots import CaseEvent, HotspotConfig
from models.risk import BURST_COLUMNS
from training.hotspots_cli import VOTE_COLUMNS, _missing, _text
from training.loading import DataError, load_cases
from training.predict import join_hot_issues, replay_hot_issues, score_frame

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
        loaded = load_cases([url.removeprefix("file://")], training=False, encoding=encoding)
    else:
        with tempfile.TemporaryDirectory(prefix="triage-part-") as tmp:
            local = Path(tmp) / Path(url.rstrip("/")).name
            try:
                with fsspec.open(url, "rb") as src:
                    local.write_bytes(src.read())
            except (OSError, ValueError) as exc:
                raise DataError(url, f"cannot read ({type(exc).__name__})") from None
            try:
                loaded = load_cases([local], training=False, encoding=encoding)
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
        import mlflow

        from features.text import init_tokenizer
        from models.mlflow_model import load_model

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
    cases: pd.DataFrame,
    bursts: pd.DataFrame | None,
    plugin_name: str,
    output: str,
    index: int,
) -> tuple[int, int, list[tuple[str, int, str]]]:
    """Score one partition with this worker's model and write it as one Parquet part.

    Returns (rows, needs review, rows the loader skipped as (file, row, reason)).
    """
    plugin = _worker_plugin(plugin_name)
    plugin.partitions += 1
    skipped = list(cases.attrs.get(SKIPPED_ATTR, []))
    cases = cases.drop(columns=[_SEQ]).reset_index(drop=True)
    if bursts is not None:
        stats = {cid: dict(zip(BURST_COLUMNS, values, strict=True))
                 for cid, values in zip(bursts["case_id"], bursts[list(BURST_COLUMNS)].to_numpy(), strict=True)}
        hot = dict(zip(bursts["case_id"], bursts["hot_issue_id"], strict=True))
        cases = join_hot_issues(cases, stats, hot)
    assert plugin.bundle is not None
    scored = score_frame(plugin.bundle, cases, workers=1)
    with fsspec.open(f"{output.rstrip('/')}/part-{index:05d}.parquet", "wb") as fh:
        pq.write_table(_as_table(scored), fh)
    return len(scored), int(scored["needs_review"].sum()) if len(scored) else 0, skipped


# --------------------------------------------------------------------------------------------------
# Hot issues: parallel sort, sequential replay
# --------------------------------------------------------------------------------------------------


def _replay_keys(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(time as int64 with NaT as the smallest int64, row sequence key) of one partition: 16 bytes a row."""
    times = frame["created_at"].astype("datetime64[ns]").to_numpy().view("int64")
    return times, frame[_SEQ].to_numpy(dtype=np.int64)


def _take_rows(frame: pd.DataFrame, positions: np.ndarray, columns: list[str]) -> pd.DataFrame:
    return frame[columns].iloc[positions]


def _events(frame: pd.DataFrame, vote_column: str | None) -> Iterator[CaseEvent]:
    """Rows already in replay order as detector events (the fields `events_from_frame` gives)."""
    votes = pd.to_numeric(frame[vote_column], errors="coerce") if vote_column else None
    for i, row in enumerate(frame.itertuples(index=False)):
        created = row.created_at
        vote = votes.iloc[i] if votes is not None else None
        yield CaseEvent(
            case_id=str(row.case_id),
            created_at=None if pd.isna(created) else pd.Timestamp(created).to_pydatetime(),
            title=_text(row.title),
            body=_text(row.body),
            reporter_id=None if _missing(row.reporter_id) else str(row.reporter_id),
            votes=None if vote is None or _missing(vote) else int(vote),
        )


def _replay_bursts(client: Client, parts: list[Any], config: HotspotConfig, chunk: int = 50_000) -> list[pd.DataFrame]:
    """Burst columns and hot_issue_id for each input partition, from one in-order replay in this process.

    Only the sort keys (time, file order) come here whole; the text comes in time order, `chunk` rows at a
    time, each chunk gathered from the partitions that hold its rows.
    """
    first = client.submit(lambda f: list(f.columns), parts[0]).result()
    vote_column = next((c for c in VOTE_COLUMNS if c in first), None)
    columns = ["case_id", "created_at", "title", "body", "reporter_id"] + ([vote_column] if vote_column else [])
    keys = client.gather(client.map(_replay_keys, parts))
    times = np.concatenate([k[0] for k in keys]) if keys else np.zeros(0, np.int64)
    seqs = np.concatenate([k[1] for k in keys]) if keys else np.zeros(0, np.int64)
    # An undated case takes the time of the case before it in file order (as `events_from_frame` does).
    nat = np.iinfo(np.int64).min
    last_dated = np.maximum.accumulate(np.where(times != nat, np.arange(len(times)), -1)) if len(times) else times
    filled = np.where(last_dated >= 0, times[np.maximum(last_dated, 0)], nat)
    order = np.lexsort((seqs, filled))  # by time, then file order; undated cases before any date come first
    part_of, row_of = seqs >> _ROW_BITS, seqs & ((1 << _ROW_BITS) - 1)
    ids_by_part: list[list[str]] = [[] for _ in parts]

    def stream() -> Iterator[CaseEvent]:
        for start in range(0, len(order), chunk):
            take = order[start : start + chunk]
            wanted = [(take[part_of[take] == p]) for p in np.unique(part_of[take])]
            futures = [client.submit(_take_rows, parts[int(part_of[m[0]])], row_of[m], columns, pure=False)
                       for m in wanted]
            frames = [f.set_axis(m) for f, m in zip(client.gather(futures), wanted, strict=True)]
            block = pd.concat(frames).loc[take]
            for cid, p in zip(block["case_id"], part_of[take], strict=True):
                ids_by_part[int(p)].append(str(cid))
            yield from _events(block, vote_column)

    stats, hot = replay_hot_issues(stream(), config)
    out: list[pd.DataFrame] = []
    for ids in ids_by_part:
        unique = list(dict.fromkeys(ids))
        frame = pd.DataFrame({"case_id": pd.Series(unique, dtype=object)})
        for column in BURST_COLUMNS:
            frame[column] = [stats[i].get(column, 0.0) for i in unique]
        frame["hot_issue_id"] = pd.Series([hot[i] for i in unique], dtype=object)
        out.append(frame)
    return out


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
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=logging.WARNING) as cluster,
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
            counts, loads = _run(client, plugin, files, out, hot_issues, encoding)
        finally:
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(plugin.name)
    rows = sum(c[0] for c in counts)
    skipped = [entry for c in counts for entry in c[2]]
    logger.info("dask scoring: %d file(s), %d rows written to %s, %d skipped", len(files), rows, out, len(skipped))
    return DaskResult(rows=rows, needs_review=sum(c[1] for c in counts), partitions=len(files), files=files,
                      model_loads={w: c[0] for w, c in loads.items()}, scored_by={w: c[1] for w, c in loads.items()},
                      skipped=skipped)


def _run(
    client: Client, plugin: ModelPlugin, files: list[str], out: str, hot_issues: HotspotConfig | None, encoding: str
) -> tuple[list[tuple[int, int, list[tuple[str, int, str]]]], dict[str, tuple[int, int]]]:
    import dask.dataframe as dd

    errors = {e for e in client.run(_plugin_error, plugin.name).values() if e}
    if errors:  # before any partition is read: one clear line instead of a failed task per partition
        raise ModelLoadError(sorted(errors)[0])
    cases = dd.from_map(load_partition, files, list(range(len(files))), encoding=encoding, enforce_metadata=False)
    parts = client.compute(cases.to_delayed())  # read once: the replay and the scoring both use them
    bursts: list[pd.DataFrame | None] = (
        list(_replay_bursts(client, parts, hot_issues)) if hot_issues is not None else [None] * len(files)
    )
    burst_futures = [client.scatter(b) if b is not None else None for b in bursts]
    n = len(files)
    done = client.map(score_partition, parts, burst_futures, [plugin.name] * n, [out] * n, range(n), pure=False)
    del parts, burst_futures, cases
    counts = client.gather(done)
    return counts, client.run(_plugin_counts, plugin.name)
