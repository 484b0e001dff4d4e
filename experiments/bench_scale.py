"""Scaling benchmark of batch scoring: `triage predict` on one process vs `--engine dask --workers 2`.

Why: issue 6 asks whether 1M cases can be scored in batch with bounded memory (peak RSS per worker
<= 2 GB) and near-linear time, and where the time goes. This script

1. builds inputs of the requested sizes by resampling the TipDM 2020 messages (/work/shared/data/tipdm2020;
   the demo data when that is absent): fresh case ids, times spread uniformly at a fixed density
   (`--per-day` cases a day, so the hot-issue window holds as many cases at every size), written in time
   order as Parquet partitions of `--rows-per-part` rows (plus one single file for the one-process engine)
   in a temporary directory, never in the repo;
2. runs each engine as a subprocess and samples its process tree (psutil) every `--interval` s: wall
   time, peak RSS of the driver and of each other process (Dask workers), the machine's load average;
3. times the per-case cost of each stage on a sample (tokenisation, router features, router model,
   risk model, replay: detector terms and detector state);
4. writes experiments/results/scale.json (runs are appended with `--merge`, so a long 1M run can be added
   later) and a log-log plot of time against size, experiments/results/scale.png, and prints a table.

Example: python experiments/bench_scale.py --sizes 10000 100000 --repeats 2
         python experiments/bench_scale.py --sizes 1000000 --engines dask --merge
         python experiments/bench_scale.py --sizes 100000 --engines dask --model DIR --old-root /tmp/base
           (the same runs from another checkout right after each of this one's, labelled dask@old)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench_scale")

SHARED = Path("/work/shared/data/tipdm2020")
SHARED_FILES = ("messages_labeled.csv", "messages_unlabeled.csv", "messages_with_replies.csv",
                "messages_with_votes_until_2019-06.csv")
DEMO = ROOT / "training" / "demo_data" / "grievances.csv"
RESULTS = ROOT / "experiments" / "results"
TRIAGE = str(Path(sys.executable).with_name("triage"))
COLUMNS = ["case_id", "reporter_id", "title", "body", "created_at"]


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def source_cases() -> tuple[pd.DataFrame, str]:
    """Distinct cases to resample from, read by the project's loader (so the benchmark sees what
    `triage predict` sees), and a name of where they came from."""
    from training.loading import load_cases

    files = [SHARED / f for f in SHARED_FILES if (SHARED / f).is_file()]
    name = "tipdm2020 (" + ", ".join(f.name for f in files) + ")" if files else "demo grievances.csv"
    frames = []
    for f in files or [DEMO]:
        frame = load_cases([f], training=False).frame
        frames.append(frame[[*COLUMNS, "dedup_key"]])
    cases = pd.concat(frames, ignore_index=True).drop_duplicates("dedup_key").drop(columns="dedup_key")
    return cases.reset_index(drop=True), name


def build_input(source: pd.DataFrame, n: int, directory: Path, *, rows_per_part: int, per_day: float,
                single_file: bool, min_parts: int = 4, seed: int = 0) -> dict[str, Any]:
    """n resampled cases as time-ordered Parquet parts (and one file); fresh ids, times spread at `per_day`."""
    rng = np.random.default_rng(seed + n)
    picks = rng.integers(0, len(source), size=n)
    frame = source.iloc[picks].reset_index(drop=True)
    span = pd.Timedelta(days=n / per_day)
    offsets = np.sort(rng.random(n)) * span.value
    frame["created_at"] = pd.Timestamp("2000-01-01") + pd.to_timedelta(offsets.astype("int64"), unit="ns")
    frame["case_id"] = [f"S{n}-{i:08d}" for i in range(n)]
    frame["created_at"] = frame["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    parts = directory / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    n_parts = max(min_parts, -(-n // rows_per_part))  # at least one partition per worker and then some
    bounds = np.linspace(0, n, n_parts + 1).astype(int)
    for i in range(n_parts):
        frame.iloc[bounds[i] : bounds[i + 1]].to_parquet(parts / f"part-{i:05d}.parquet", index=False)
    single = directory / "cases.parquet"
    if single_file:
        frame.to_parquet(single, index=False)
    text_bytes = int(frame["title"].str.len().sum() + frame["body"].str.len().sum())
    return {"rows": n, "parts": n_parts, "rows_per_part": int(bounds[1] - bounds[0]),
            "parts_glob": str(parts / "*.parquet"), "single": str(single) if single_file else None,
            "text_chars_per_case": round(text_bytes / n, 1), "span_days": round(n / per_day, 1)}


# --------------------------------------------------------------------------------------------------
# Running and sampling
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    engine: str
    rows: int
    repeat: int
    wall_s: float
    exit_code: int
    driver_peak_rss_mb: float
    worker_peak_rss_mb: dict[str, float]  # pid + role -> peak RSS
    tree_peak_rss_mb: float  # peak of the sum over the tree
    load_avg_mean: float
    load_avg_max: float
    started_utc: str
    phases_s: dict[str, float] = field(default_factory=dict)
    command: str = ""

    @property
    def max_worker_mb(self) -> float:
        return max(self.worker_peak_rss_mb.values(), default=0.0)


def _role(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return "gone"
    if "multiprocessing.resource_tracker" in cmd:
        return "resource-tracker"
    if "multiprocessing" in cmd or "spawn_main" in cmd or "forkserver" in cmd:
        return "worker"
    return "child"


def run_measured(
    cmd: list[str], log: Path, interval: float, code_root: Path = ROOT
) -> tuple[float, int, dict[str, Any]]:
    """Run `cmd`, sampling the RSS of every process in its tree and the load average, until it exits.

    `code_root`: the checkout whose code runs (first on PYTHONPATH, so Dask's spawned workers import it too)."""
    started = time.perf_counter()
    env = os.environ.copy() if code_root == ROOT else {**os.environ, "PYTHONPATH": str(code_root)}
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=code_root, env=env)
    root = psutil.Process(proc.pid)
    peaks: dict[int, float] = {}
    roles: dict[int, str] = {}
    tree_peak = 0.0
    loads: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        while not stop.is_set():
            total = 0.0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                total += rss
                peaks[p.pid] = max(peaks.get(p.pid, 0.0), rss)
                if p.pid not in roles:
                    roles[p.pid] = "driver" if p.pid == root.pid else _role(p)
            tree_peak = max(tree_peak, total)
            loads.append(os.getloadavg()[0])
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    code = proc.wait()
    wall = time.perf_counter() - started
    stop.set()
    thread.join()
    workers = {f"{roles[p]}-{p}": round(v, 1) for p, v in peaks.items() if roles.get(p) == "worker"}
    return wall, code, {"driver": round(peaks.get(root.pid, 0.0), 1), "workers": workers, "tree": round(tree_peak, 1),
                        "load_mean": round(statistics.fmean(loads), 2) if loads else 0.0,
                        "load_max": round(max(loads), 2) if loads else 0.0}


def triage_command(code_root: Path) -> list[str]:
    """The `triage` command of checkout `code_root` (this one: the installed entry point)."""
    if code_root == ROOT:
        return [TRIAGE]
    module = "command.cli" if (code_root / "command" / "cli.py").exists() else "training.cli"
    return [sys.executable, "-c", f"import sys; from {module} import app; sys.argv[0] = 'triage'; app()"]


def run_engine(engine: str, inputs: dict[str, Any], model: str, workdir: Path, repeat: int, interval: float,
               hot_issues: bool, code_root: Path = ROOT) -> Run:
    """One `triage predict` run; from another checkout (`code_root`), recorded as engine ``<engine>@old``."""
    label = engine if code_root == ROOT else f"{engine}@old"
    out = workdir / f"out-{label}-{inputs['rows']}-{repeat}"
    shutil.rmtree(out, ignore_errors=True)
    flags = [] if hot_issues else ["--no-hot-issues"]
    triage = triage_command(code_root)
    if engine == "pandas":
        cmd = [*triage, "predict", "--model", model, "--input", inputs["single"], "--output", f"{out}.parquet",
               "--workers", "1", *flags]
    else:
        cmd = [*triage, "predict", "--model", model, "--input", inputs["parts_glob"], "--output", str(out),
               "--engine", "dask", "--workers", "2", "-v", *flags]
    log = Path(tempfile.gettempdir()) / f"bench_scale-{label}-{inputs['rows']}-{repeat}.log"
    logger.info("running %s (log %s)", " ".join(cmd), log)
    begun = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    wall, code, mem = run_measured(cmd, log, interval, code_root)
    text = log.read_text(errors="replace")
    phases: dict[str, float] = {}
    match = re.search(r"dask phases \(s\): (.*)", text)
    if match:
        phases = {k: float(v) for k, v in (item.rsplit(" ", 1) for item in match.group(1).split(", "))}
    if code != 0:
        logger.error("%s on %d rows failed (exit %d); see %s", engine, inputs["rows"], code, log)
    return Run(label, inputs["rows"], repeat, round(wall, 1), code, mem["driver"], mem["workers"], mem["tree"],
               mem["load_mean"], mem["load_max"], begun, phases, " ".join(cmd))


def outputs_equal(workdir: Path, n: int, repeat: int) -> bool:
    """Whether the Dask parts hold the single-process predictions, row for row (by case_id)."""
    single = pd.read_parquet(workdir / f"out-pandas-{n}-{repeat}.parquet")
    parts = sorted((workdir / f"out-dask-{n}-{repeat}").glob("part-*.parquet"))
    dask = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def by_case(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values("case_id", kind="stable").reset_index(drop=True)

    try:
        pd.testing.assert_frame_equal(by_case(dask), by_case(single), check_exact=True)
    except AssertionError as exc:
        logger.error("outputs differ at %d rows: %s", n, str(exc)[:300])
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Per-case cost of each stage, in this process
# --------------------------------------------------------------------------------------------------


def breakdown(parts_glob: str, model: str, sample: int) -> dict[str, Any]:
    """Milliseconds per case of each stage on `sample` cases, cold jieba cache where a stage tokenises."""
    from features.text import _tokenise_cached, case_tokens, init_tokenizer
    from models.hotspot_settings import load_hotspot_config
    from models.hotspots import CaseEvent, HotspotDetector, case_terms
    from models.mlflow_model import load_model
    from training.dask_predict import expand_inputs, load_partition
    from training.hotspots_cli import _text
    from training.predict import CHUNK, attach_hot_issues, score_frame

    started = time.perf_counter()
    init_tokenizer()
    bundle = load_model(model).bundle
    load_s = time.perf_counter() - started
    frame = load_partition(expand_inputs(parts_glob)[0], 0).head(sample).drop(columns="_seq")
    config = load_hotspot_config(None)
    n = len(frame)
    timings = dict.fromkeys(("tokenise", "router_features", "router_model", "risk_model", "replay_terms",
                             "replay_state"), 0.0)
    with_bursts = attach_hot_issues(frame, config)
    for start in range(0, n, CHUNK):
        chunk = with_bursts.iloc[start : start + CHUNK].reset_index(drop=True)
        _tokenise_cached.cache_clear()
        t0 = time.perf_counter()
        for title, body in zip(chunk["title"], chunk["body"], strict=True):
            case_tokens(title, body)
        t1 = time.perf_counter()
        pairs = chunk[["title", "body"]]
        features = bundle.router[:-1].transform(pairs)  # jieba cached: the vectorizer's own work
        t2 = time.perf_counter()
        compiled = bundle._compiled()
        proba = compiled.predict_proba(features) if compiled is not None else bundle.router[-1].predict_proba(features)
        bundle.routes_from_proba(proba)
        t3 = time.perf_counter()
        if bundle.risk is not None:
            bundle.risk.predict(chunk, proba, bundle.classes, reasons=False)
        t4 = time.perf_counter()
        timings["tokenise"] += t1 - t0
        timings["router_features"] += t2 - t1
        timings["router_model"] += t3 - t2
        timings["risk_model"] += t4 - t3
    _tokenise_cached.cache_clear()
    t0 = time.perf_counter()
    terms = [case_terms(_text(t), _text(b), config) for t, b in zip(frame["title"], frame["body"], strict=True)]
    t1 = time.perf_counter()
    detector = HotspotDetector(config)
    for row, term in zip(frame.itertuples(index=False), terms, strict=True):
        detector.observe(CaseEvent(str(row.case_id), pd.Timestamp(row.created_at).to_pydatetime()), term)
    t2 = time.perf_counter()
    timings["replay_terms"] += t1 - t0
    timings["replay_state"] += t2 - t1
    _tokenise_cached.cache_clear()
    t0 = time.perf_counter()
    score_frame(bundle, with_bursts)
    end_to_end = time.perf_counter() - t0
    per_case = {k: round(1000 * v / n, 3) for k, v in timings.items()}
    return {"sample": n, "ms_per_case": per_case, "score_frame_ms_per_case": round(1000 * end_to_end / n, 3),
            "model_load_s": round(load_s, 1),
            "note": "tokenise: jieba on title and body (cold cache), as the router and risk model share it; "
                    "router_features / risk_model: with those tokens cached; replay_terms: the detector's own "
                    "jieba + places (stateless, on Dask workers); replay_state: idf, burst search, statistics "
                    "(sequential, in the driver)"}


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over the repeats of each (engine, size) that succeeded."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        if r["exit_code"] == 0:
            groups.setdefault((r["engine"], r["rows"]), []).append(r)
    out = []
    for (engine, rows), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        wall = statistics.median(r["wall_s"] for r in rs)
        out.append({
            "engine": engine, "rows": rows, "repeats": len(rs), "wall_s_median": round(wall, 1),
            "wall_s_all": [r["wall_s"] for r in rs], "ms_per_case": round(1000 * wall / rows, 2),
            "driver_peak_rss_mb": max(r["driver_peak_rss_mb"] for r in rs),
            "worker_peak_rss_mb": max(max(r["worker_peak_rss_mb"].values(), default=0.0) for r in rs),
            "load_avg_mean": round(statistics.fmean(r["load_avg_mean"] for r in rs), 2),
            "phases_s_median": {k: round(statistics.median(r["phases_s"].get(k, 0.0) for r in rs), 1)
                                for k in rs[0]["phases_s"]},
        })
    return out


def growth_exponents(summary: list[dict[str, Any]]) -> dict[str, float]:
    """Slope of log(time) against log(size) per engine (1.0 = linear)."""
    out = {}
    for engine in sorted({s["engine"] for s in summary}):
        pts = [(s["rows"], s["wall_s_median"]) for s in summary if s["engine"] == engine]
        if len(pts) >= 2:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[engine] = round(float(np.polyfit(x, y, 1)[0]), 3)
    return out


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels = {"pandas": "1 process (triage predict --workers 1)", "dask": "Dask LocalCluster, 2 workers",
              "pandas@old": "1 process, old code (--old-root)", "dask@old": "Dask, 2 workers, old code (--old-root)"}
    for engine, marker in (("pandas", "o"), ("dask", "s"), ("pandas@old", "o"), ("dask@old", "s")):
        pts = [(s["rows"], s["wall_s_median"]) for s in summary if s["engine"] == engine]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=marker, label=labels[engine],
                    linestyle="--" if engine.endswith("@old") else "-")
        for s in summary:  # each point says how loaded the machine was
            if s["engine"] == engine:
                ax.annotate(f"load {s['load_avg_mean']:.1f}", (s["rows"], s["wall_s_median"]), fontsize=7,
                            textcoords="offset points", xytext=(6, 4 if engine.startswith("pandas") else -12))
    if summary:
        x0, y0 = summary[0]["rows"], summary[0]["wall_s_median"]
        xs = np.array([x0, max(s["rows"] for s in summary)])
        ax.plot(xs, y0 * xs / x0, ":", color="grey", label="linear from the first point")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cases")
    ax.set_ylabel("wall time (s), median")
    ax.set_title(f"Batch scoring time against size ({os.cpu_count()} CPUs; load average per point)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(summary: list[dict[str, Any]]) -> str:
    head = (f"{'engine':<10} {'cases':>6} {'n':>2} {'wall s':>8} {'ms/case':>8} {'driver MB':>10} "
            f"{'worker MB':>10} {'load':>5}")
    lines = [head, "-" * len(head)]
    for s in summary:
        lines.append(f"{s['engine']:<10} {s['rows']:>6} {s['repeats']:>2} {s['wall_s_median']:>8.1f} "
                     f"{s['ms_per_case']:>8.2f} {s['driver_peak_rss_mb']:>10.0f} {s['worker_peak_rss_mb']:>10.0f} "
                     f"{s['load_avg_mean']:>5.2f}")
    return "\n".join(lines)


def write_results(result: dict[str, Any], path: Path) -> None:
    """Summary, growth exponents, JSON and plot from `result["runs"]`."""
    summary = summarise(result.get("runs", []))
    result["summary"], result["growth_exponent"] = summary, growth_exponents(summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    plot(summary, path.with_suffix(".png"))


def combine(paths: list[Path], results: Path) -> None:
    """One results file from several (their runs, inputs, output checks; the last breakdown given wins)."""
    merged: dict[str, Any] = {"runs": [], "inputs": {}, "equal_outputs": {}}
    for path in paths:
        part = json.loads(path.read_text())
        merged["runs"] += part.get("runs", [])
        merged["inputs"].update(part.get("inputs", {}))
        merged["equal_outputs"].update(part.get("equal_outputs", {}))
        for key, value in part.items():  # machine, source, breakdown, notes...: the last file given wins
            if key not in ("runs", "inputs", "equal_outputs", "summary", "growth_exponent"):
                merged[key] = value
    write_results(merged, results)
    print(table(merged["summary"]))
    print("growth exponent (1 = linear):", merged["growth_exponent"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engines", nargs="*", choices=["pandas", "dask"], default=["pandas", "dask"],
                        help="none: only the stage breakdown")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--rows-per-part", type=int, default=20_000)
    parser.add_argument("--min-parts", type=int, default=4, help="partitions at least (10k: 4 parts of 2,500)")
    parser.add_argument("--per-day", type=float, default=100.0, help="case density of the resampled times")
    parser.add_argument("--model", default="models:/grievance-triage@champion")
    parser.add_argument("--no-hot-issues", action="store_true")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples")
    parser.add_argument("--breakdown-sample", type=int, default=2000, help="cases for the stage breakdown; 0: skip")
    parser.add_argument("--workdir", type=Path, default=None, help="where inputs and outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary inputs and outputs")
    parser.add_argument("--merge", action="store_true", help="add to the runs already in the results JSON")
    parser.add_argument("--results", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--old-root", type=Path, default=None,
                        help="also run each engine from this checkout (e.g. a worktree of the commit before a "
                             "change), right after this one's, at sizes up to --old-max-rows; runs are labelled "
                             "<engine>@old. --model must be one both checkouts load")
    parser.add_argument("--old-max-rows", type=int, default=100_000,
                        help="largest size run from --old-root (the old path can take an hour at 1M)")
    parser.add_argument("--combine", type=Path, nargs="+", default=None,
                        help="run nothing: merge these results files (e.g. a long 1M run made apart) into --results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.combine:
        combine(args.combine, args.results)
        return
    if args.workdir is not None and ROOT in args.workdir.resolve().parents:
        parser.error("--workdir must be outside the repository (inputs are copies of the data)")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.results.read_text()) if args.merge and args.results.exists() else {}
    runs: list[dict[str, Any]] = list(previous.get("runs", []))
    inputs_info: dict[str, Any] = dict(previous.get("inputs", {}))
    source, source_name = source_cases()
    logger.info("source: %s, %d distinct cases", source_name, len(source))
    result: dict[str, Any] = dict(previous)

    def save() -> None:
        result.update({
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                        "note": "load_avg_* is the 1-minute load average during each run: above the "
                                "core count, other jobs shared the cores and the times are inflated"},
            "source": source_name, "per_day": args.per_day, "hot_issues": not args.no_hot_issues,
            "inputs": inputs_info, "runs": runs,
        })
        write_results(result, args.results)

    try:
        for n in sorted(args.sizes):
            inputs = build_input(source, n, workdir / f"in-{n}", rows_per_part=args.rows_per_part,
                                 min_parts=args.min_parts,
                                 per_day=args.per_day, single_file="pandas" in args.engines)
            inputs_info[str(n)] = {k: v for k, v in inputs.items() if k not in ("parts_glob", "single")}
            if args.breakdown_sample and "breakdown" not in result:
                result["breakdown"] = breakdown(inputs["parts_glob"], args.model, args.breakdown_sample)
                logger.info("breakdown: %s", result["breakdown"]["ms_per_case"])
            for repeat in range(args.repeats):
                for engine in args.engines:
                    run = run_engine(engine, inputs, args.model, workdir, repeat, args.interval, not args.no_hot_issues)
                    runs.append(asdict(run))
                    logger.info("%s %d: %.1f s, driver %.0f MB, workers %s, load %.2f", engine, n, run.wall_s,
                                run.driver_peak_rss_mb, run.worker_peak_rss_mb, run.load_avg_mean)
                    save()  # after every run: a long run cut short still leaves the ones before it
                    if args.old_root is not None and n <= args.old_max_rows:
                        old = run_engine(engine, inputs, args.model, workdir, repeat, args.interval,
                                         not args.no_hot_issues, args.old_root.resolve())
                        runs.append(asdict(old))
                        logger.info("%s %d: %.1f s (this checkout %.1f s: %.2fx)", old.engine, n, old.wall_s,
                                    run.wall_s, old.wall_s / run.wall_s if run.wall_s else float("nan"))
                        save()
                if set(args.engines) == {"pandas", "dask"} and n <= 100_000:
                    result.setdefault("equal_outputs", {})[f"{n}-{repeat}"] = outputs_equal(workdir, n, repeat)
            save()
            if not args.keep:
                shutil.rmtree(workdir / f"in-{n}", ignore_errors=True)
                for out in workdir.glob(f"out-*-{n}-*"):
                    shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink()
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(result.get("summary", [])))
    print("growth exponent (1 = linear):", result.get("growth_exponent"))
    if "breakdown" in result:
        print("ms per case by stage:", result["breakdown"]["ms_per_case"])


if __name__ == "__main__":
    main()
