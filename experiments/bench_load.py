"""Load benchmark: the service run as in production, under 50 concurrent clients, and a count of what it kept.

    .venv/bin/python experiments/bench_load.py [--clients 50] [--seconds 60] [--max-requests 20000]
        [--workers 2] [--data PATH] [--model URI] [--postgres-url URL] [--output PATH]

About two minutes on 2 cores: start-up, a short warm-up, the timed run, and the counts.

What runs: ``uvicorn serving.app:create_app --factory --workers 2`` on 127.0.0.1 (a free port), with its
access log at INFO as deployed, against a PostgreSQL schema made for this run and dropped after it
(``TRIAGE_DATABASE_URL`` with ``options=-csearch_path=...``), the model ``--model`` (default the champion
in ./mlflow.db; when that is not registered, one is trained on the demo data into a temporary MLflow store,
as ``experiments/bench_service.py`` does) and one intake key made for the run (``TRIAGE_API_KEYS``).

Load: ``--clients`` asyncio tasks sharing one HTTP client (aiohttp; ``--client httpx``), each posting
``/v1/triage`` back to back with the next message of ``../shared/data/tipdm2020/messages_unlabeled.csv`` (the
demo data when absent, and the output says so), every request with its own case_id, until ``--seconds`` have
passed or ``--max-requests`` were sent. Messages are sent in file order and reused when the run needs more
than the file holds (a reused text still has a new case_id, so it is a new case to the service).
``created_at`` is left out: the service stamps each case with its arrival time, as for a live intake stream.

Afterwards the server is stopped and the predictions table is read: the rows of this run must be exactly
the case_ids that got 200 (nothing lost, nothing stored twice). The server's log is also searched for
the texts sent (they must never appear). Writes experiments/results/load.json with no message text in it.
Target: no 5xx, nothing lost, p99 ≤ 100 ms; issue 15's: ≥ 250 requests/s and p99 ≤ 500 ms with 50 clients.

``--old-root PATH`` drives the service of another checkout (e.g. ``git worktree add /tmp/base <commit>``) the
same way right after this one's, on a schema of its own, and reports both and their throughput ratio; the
model must be one both checkouts load (a bundle folder holding each one's file).

The load generator runs on the same 2 cores as the two workers and PostgreSQL, so figures are of the
whole machine under load; its own CPU time is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pandas as pd
import psutil
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiments.bench_service import resolve_model  # noqa: E402
from serving.app import KEEP_ALIVE_SECONDS  # noqa: E402
from serving.auth import new_key  # noqa: E402
from serving.settings import DEFAULT_MODEL_URI  # noqa: E402
from store.engine import redact  # noqa: E402
from store.scratch import admin_engine, create_schema, drop_schema, schema_url  # noqa: E402
from training.loading import COLUMN_ALIASES  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_unlabeled.csv"
DEMO_DATA = ROOT / "training" / "demo_data" / "grievances.csv"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESULTS = ROOT / "experiments" / "results" / "load.json"
TARGET_P99_MS = 100.0
#: Issue 15: 50 clients x 60 s against 2 workers.
TARGET_RPS, TARGET_P99_UNDER_LOAD_MS, TARGET_CLIENTS = 250.0, 500.0, 50
STARTUP_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 30.0
CLIENT_CLASSES = {"aiohttp": "aiohttp.ClientSession", "httpx": "httpx.AsyncClient"}


# -- data -------------------------------------------------------------------------------------------
def load_messages(path: Path) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(title, body) of every row with some text, in file order."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = raw.rename(columns={c: COLUMN_ALIASES.get(c.strip(), c.strip()) for c in raw.columns})
    if "title" not in frame.columns or "body" not in frame.columns:
        raise SystemExit(f"{path}: needs title and body columns (留言主题, 留言详情)")
    pairs = [(t[:20_000], b[:20_000]) for t, b in zip(frame["title"], frame["body"], strict=True)
             if (t.strip() or b.strip())]
    chars = [len(t) + len(b) for t, b in pairs]
    info = {"file": os.path.relpath(path, ROOT), "rows_in_file": len(raw), "messages_used": len(pairs),
            "chars_per_message_median": float(np.median(chars)) if chars else 0.0}
    return pairs, info


# -- the server -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Schema:
    """A PostgreSQL schema of its own for the run, dropped at close."""

    def __init__(self, url: str) -> None:
        admin, reason = admin_engine(url, connect_timeout=5)
        if admin is None:
            raise SystemExit(f"PostgreSQL unreachable at {redact(url)}: {reason}")
        self.admin = admin
        self.name = create_schema(admin, "bench_load_")
        self.url = schema_url(url, self.name)

    def predictions(self, prefix: str) -> list[str]:
        with self.admin.connect() as connection:
            return list(connection.execute(
                text(f'SELECT case_id FROM "{self.name}".predictions WHERE case_id LIKE :p'), {"p": prefix + "%"}
            ).scalars())

    def close(self) -> None:
        drop_schema(self.admin, self.name)
        self.admin.dispose()


def start_server(
    port: int, workers: int, env: dict[str, str], log_path: Path, code_root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """uvicorn serving the app of the checkout `code_root` (this one, or another one to compare against)."""
    # Keep-alive as deployed (the systemd unit, `triage serve`): with uvicorn's 5 s default, runs lost a few
    # requests to connections closed mid-request (ReadError on the client).
    command = [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--workers", str(workers),
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "info",
               "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS)]
    log = log_path.open("wb")
    env = {**env, "PYTHONPATH": str(code_root)}  # ahead of the editable install of this checkout
    return subprocess.Popen(command, cwd=code_root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(process: subprocess.Popen[bytes], log_path: Path, workers: int) -> float:
    """Seconds until every worker logged 'Application startup complete'; exits with the log's tail if not."""
    started = time.perf_counter()
    while time.perf_counter() - started < STARTUP_TIMEOUT_S:
        if process.poll() is not None:
            break
        if log_path.read_text(errors="replace").count("Application startup complete") >= workers:
            return time.perf_counter() - started
        time.sleep(0.5)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise SystemExit(f"the server did not start ({workers} workers) within {STARTUP_TIMEOUT_S:.0f} s:\n{tail}")


def stop_server(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


# -- the load ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)  # of 200 answers
    chars: list[int] = field(default_factory=list)  # title + body length of each of those
    statuses: Counter[str] = field(default_factory=Counter)
    ok_case_ids: list[str] = field(default_factory=list)
    sent_case_ids: list[str] = field(default_factory=list)
    error_examples: dict[str, str] = field(default_factory=dict)


class Poster:
    """One HTTP client shared by the load's tasks: ``post`` gives (status, body text of a non-200) and raises
    `Failed` for a timeout or a transport error, whichever library sends the requests.

    ``aiohttp`` is the default: on these 2 cores the load generator shares the processor with the service,
    and httpx's client cost about 4 ms of CPU per request there (a third of the machine at 130 requests/s),
    aiohttp's about a quarter of that. ``--client httpx`` keeps the earlier runs' generator comparable."""

    def __init__(self, library: str, base_url: str, key: str, clients: int) -> None:
        self.library = library
        self._base_url, self._headers, self._clients = base_url, {"X-API-Key": key}, clients
        self._client: Any = None

    async def __aenter__(self) -> Poster:
        if self.library == "httpx":
            limits = httpx.Limits(max_connections=self._clients, max_keepalive_connections=self._clients)
            self._client = httpx.AsyncClient(base_url=self._base_url, headers=self._headers, limits=limits,
                                             timeout=REQUEST_TIMEOUT_S)
        else:
            self._client = aiohttp.ClientSession(
                base_url=self._base_url, headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._clients, keepalive_timeout=KEEP_ALIVE_SECONDS - 5),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.library == "httpx":
            await self._client.aclose()
        else:
            await self._client.close()

    async def post(self, payload: dict[str, Any]) -> tuple[int, str | None]:
        if self.library == "httpx":
            try:
                response = await self._client.post("/v1/triage", json=payload)
            except httpx.TimeoutException as exc:
                raise Failed("timeout", repr(exc)) from exc
            except httpx.HTTPError as exc:
                raise Failed(type(exc).__name__, f"{exc!r} (cause {exc.__cause__!r})") from exc
            return response.status_code, None if response.status_code == 200 else response.text
        try:
            async with self._client.post("/v1/triage", json=payload) as response:
                body = await response.read()  # read in full: the connection goes back to the pool
                return response.status, None if response.status == 200 else body.decode("utf-8", "replace")
        except TimeoutError as exc:
            raise Failed("timeout", repr(exc)) from exc
        except aiohttp.ClientError as exc:
            raise Failed(type(exc).__name__, f"{exc!r} (cause {exc.__cause__!r})") from exc


class Failed(Exception):
    """No HTTP answer: ``kind`` is "timeout" or the client library's error type."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(kind)
        self.kind, self.detail = kind, detail


def _payload(messages: list[tuple[str, str]], prefix: str, n: int) -> tuple[str, dict[str, Any], int]:
    title, body = messages[n % len(messages)]
    case_id = f"{prefix}{n:07d}"
    return case_id, {"case_id": case_id, "title": title, "body": body, "reporter_id": f"LOAD-U{n % 997}"}, \
        len(title) + len(body)


async def _send(poster: Poster, outcome: Outcome, case_id: str, payload: dict[str, Any], chars: int,
                since: float) -> None:
    """Post one case and record what came back; latency counts from `since`."""
    outcome.sent_case_ids.append(case_id)
    try:
        status, text = await poster.post(payload)
    except Failed as exc:
        outcome.statuses[exc.kind] += 1
        if exc.kind != "timeout":
            outcome.error_examples.setdefault(
                exc.kind, f"{exc.detail} after {(time.perf_counter() - since) * 1000:.0f} ms")
        return
    elapsed = (time.perf_counter() - since) * 1000
    outcome.statuses[str(status)] += 1
    if status == 200:
        outcome.latencies_ms.append(elapsed)
        outcome.chars.append(chars)
        outcome.ok_case_ids.append(case_id)
    else:  # error bodies hold no case text (422 drops `input`); keep one of each for the record
        outcome.error_examples.setdefault(str(status), (text or "")[:300])


async def drive(base_url: str, key: str, messages: list[tuple[str, str]], prefix: str, clients: int,
                seconds: float, max_requests: int, offset: int = 0, library: str = "aiohttp") -> tuple[Outcome, float]:
    """`clients` tasks posting back to back; returns what happened and the wall time taken."""
    outcome = Outcome()
    counter = iter(range(offset, offset + max_requests))
    async with Poster(library, base_url, key, clients) as poster:
        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                n = next(counter, None)
                if n is None:
                    return
                await _send(poster, outcome, *_payload(messages, prefix, n), time.perf_counter())

        wall = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return outcome, time.perf_counter() - wall


async def drive_rate(base_url: str, key: str, messages: list[tuple[str, str]], prefix: str, rate: float,
                     seconds: float, clients: int, offset: int, library: str = "aiohttp") -> tuple[Outcome, float]:
    """Open loop: a request every 1/`rate` s whatever the answers do, at most `clients` in flight.

    Latency counts from the moment a request was due, so time spent waiting for a free client is included
    (no coordinated omission: a slow server cannot slow the clock that measures it).
    """
    outcome = Outcome()
    slots = asyncio.Semaphore(clients)
    total = int(rate * seconds)
    async with Poster(library, base_url, key, clients) as poster:

        async def one(n: int, due: float) -> None:
            async with slots:
                await _send(poster, outcome, *_payload(messages, prefix, n), due)

        start = time.perf_counter()
        tasks = []
        for k in range(total):
            due = start + k / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(offset + k, due)))
        await asyncio.gather(*tasks)
        return outcome, time.perf_counter() - start


def by_length(outcome: Outcome) -> dict[str, Any]:
    """p50 latency of the shortest half of the texts against the longest 5%: under processor sharing a long
    text (more tokens to cut and score) holds its request longer."""
    if len(outcome.chars) < 40:
        return {}
    chars, lat = np.asarray(outcome.chars), np.asarray(outcome.latencies_ms)
    short, long = chars <= np.percentile(chars, 50), chars >= np.percentile(chars, 95)
    return {"short_half_max_chars": int(np.percentile(chars, 50)), "short_half_p50_ms": float(np.median(lat[short])),
            "longest_5pct_min_chars": int(np.percentile(chars, 95)), "longest_5pct_p50_ms": float(np.median(lat[long]))}


def summary(outcome: Outcome, wall_s: float) -> dict[str, Any]:
    ok = len(outcome.latencies_ms)
    return {
        "requests_sent": len(outcome.sent_case_ids),
        "wall_s": round(wall_s, 2),
        "throughput_rps": ok / wall_s if wall_s else 0.0,
        "ok": ok,
        "by_status": dict(sorted(outcome.statuses.items())),
        "five_xx": sum(n for status, n in outcome.statuses.items() if status.startswith("5")),
        "error_examples": outcome.error_examples,
        **percentiles(outcome.latencies_ms),
        "latency_by_text_length": by_length(outcome),
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    array = np.asarray(values)
    return {"p50_ms": float(np.percentile(array, 50)), "p95_ms": float(np.percentile(array, 95)),
            "p99_ms": float(np.percentile(array, 99)), "max_ms": float(array.max()), "mean_ms": float(array.mean())}


def connections_per_process(port: int) -> dict[str, int] | None:
    """Established connections to `port` by the pid that holds them (`ss`), or None where `ss` is missing.

    Keep-alive connections stay with the worker that accepted them, so this shows how evenly the kernel
    spread the clients over the workers.
    """
    try:
        listing = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                                 capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(Counter(f"pid {pid}" for pid in re.findall(r"pid=(\d+)", listing)))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def texts_in_log(log: str, messages: list[tuple[str, str]], used: int) -> int:
    """How many of the sent messages have a title or a 12-character piece of body in the server's log."""
    found = 0
    for title, body in messages[: min(used, len(messages))]:
        pieces = [p for p in (title.strip(), body.strip()[:12]) if len(p) >= 6]
        found += any(p in log for p in pieces)
    return found


#: The feed's group-commit figures read from /metrics (sums and counts of three histograms).
FEED_SERIES = ("triage_hot_issue_feed_group_cases", "triage_hot_issue_feed_transaction_seconds",
               "triage_hot_issue_feed_lock_held_seconds")


def server_figures(base_url: str, admin_key: str, process: subprocess.Popen[bytes]) -> dict[str, float]:
    """The workers' CPU seconds so far and the feed's histogram sums and counts (all workers), to take the
    difference over the closed loop: what a request costs the server, and whether requests queue for the
    feed (groups near `MAX_GROUP`, transactions busy nearly all the time on every worker)."""
    figures: dict[str, float] = {"server_cpu_s": 0.0}
    try:
        parent = psutil.Process(process.pid)
        for proc in [parent, *parent.children(recursive=True)]:
            times = proc.cpu_times()
            figures["server_cpu_s"] += times.user + times.system
    except psutil.Error:
        pass
    figures["postgres_cpu_s"] = postgres_cpu_s()
    machine = psutil.cpu_times()
    figures["machine_cpu_s"] = sum(machine)
    figures["machine_idle_s"] = machine.idle + getattr(machine, "iowait", 0.0)
    figures["machine_steal_s"] = getattr(machine, "steal", 0.0)
    response = httpx.get(f"{base_url}/metrics", headers={"X-API-Key": admin_key}, timeout=30)
    response.raise_for_status()
    for family in text_string_to_metric_families(response.text):
        if family.name in FEED_SERIES:
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    figures[sample.name] = figures.get(sample.name, 0.0) + sample.value
    return figures


def postgres_cpu_s() -> float:
    """CPU seconds of this machine's PostgreSQL processes so far (0 where they cannot be read): the database
    shares the 2 cores, so what a request costs it is part of what a request costs."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        try:
            if (proc.info["name"] or "").startswith("postgres"):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def server_summary(before: dict[str, float], after: dict[str, float], ok: int, wall_s: float,
                   workers: int) -> dict[str, Any]:
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    groups = delta.get("triage_hot_issue_feed_group_cases_count", 0.0)
    busy = delta.get("triage_hot_issue_feed_transaction_seconds_sum", 0.0)
    held = delta.get("triage_hot_issue_feed_lock_held_seconds_sum", 0.0)
    cases = delta.get("triage_hot_issue_feed_group_cases_sum", 0.0)
    return {
        "workers_cpu_s": round(delta["server_cpu_s"], 1),
        "workers_cpu_ms_per_ok_request": round(1000 * delta["server_cpu_s"] / ok, 2) if ok else None,
        "feed_groups": int(groups),
        "feed_cases_per_group": round(delta.get("triage_hot_issue_feed_group_cases_sum", 0.0) / groups, 2)
        if groups else None,
        "feed_ms_per_group": round(1000 * busy / groups, 2) if groups else None,
        "feed_busy_share_per_worker": round(busy / (wall_s * workers), 3) if wall_s else None,
        # The feed lock is one for all workers: the share of the loop's time someone held it (1 = saturated).
        # None for a server that does not report it (an older checkout).
        "feed_lock_held_share": round(held / wall_s, 3) if held and wall_s else None,
        "feed_lock_held_ms_per_case": round(1000 * held / cases, 2) if held and cases else None,
        "postgres_cpu_ms_per_ok_request": round(1000 * delta.get("postgres_cpu_s", 0.0) / ok, 2) if ok else None,
        # Of all the machine's CPU time over the loop (both cores): idle (incl. I/O wait), and taken by the host.
        "machine_idle_share": round(delta.get("machine_idle_s", 0.0) / delta["machine_cpu_s"], 3)
        if delta.get("machine_cpu_s") else None,
        "machine_steal_share": round(delta.get("machine_steal_s", 0.0) / delta["machine_cpu_s"], 3)
        if delta.get("machine_cpu_s") else None,
    }


def findings(report: dict[str, Any]) -> list[str]:
    """What the figures say, worded from the figures themselves (kept in the results file)."""
    r, clients = report["results"], report["load"]["clients"]
    notes = [
        f"each of the {report['server']['workers']} workers keeps its own in-memory hot-issue detector, so a burst "
        "whose cases land on different workers is seen in parts (issue 6 deals with several replicas)",
        f"the load generator shares the 2 cores with the workers and PostgreSQL ({r['load_generator_cpu_s']} s of "
        f"CPU in {r['wall_s']} s), and so does whatever else ran (load average "
        f"{report['machine']['load_average_start']} at the start)",
    ]
    if r["throughput_rps"] and r["mean_ms"]:
        needed = 1000 * clients / TARGET_P99_MS
        notes.append(
            f"closed loop: {clients} clients with no pause keep the service saturated, so latency is queueing: mean "
            f"{r['mean_ms']:.0f} ms ≈ clients / throughput = {1000 * clients / r['throughput_rps']:.0f} ms (Little's "
            f"law); p99 ≤ {TARGET_P99_MS:g} ms with {clients} clients in flight would need ≥ "
            f"{needed:.0f} requests/s, {needed / r['throughput_rps']:.0f}× what was served here")
    spread = r.get("connections_per_worker_mid_run")
    if spread and len(spread) > 1:
        notes.append(f"keep-alive connections per worker mid-run: {sorted(spread.values())}; the kernel hands "
                     "connections to workers unevenly and they stay there, so one worker queues more")
    by_len = r.get("latency_by_text_length") or {}
    if by_len:
        notes.append(f"text length barely moves the closed-loop latency (p50 {by_len['short_half_p50_ms']:.0f} ms for "
                     f"the shorter half, {by_len['longest_5pct_p50_ms']:.0f} ms for the longest 5%): the wait is "
                     "for a turn, not for the work")
    opened = report.get("results_open_loop")
    if opened and opened.get("p99_ms") is not None:
        notes.append(f"open loop at {opened['rate_rps']:g} requests/s (below capacity): p50 {opened['p50_ms']:.0f} ms, "
                     f"p95 {opened['p95_ms']:.0f} ms, p99 {opened['p99_ms']:.0f} ms")
    return notes


@dataclass
class Run:
    """One server's measurement: the closed loop, the optional open loop, what the store kept."""

    code_root: Path
    startup_s: float
    exit_code: int | None
    server_log: str
    warm: Outcome
    outcome: Outcome
    wall_s: float
    opened: tuple[Outcome, float] | None
    stored: list[str]
    spread: dict[str, dict[str, int] | None]
    cpu_client_s: float
    server: dict[str, Any]


def measure(code_root: Path, args: argparse.Namespace, messages: list[tuple[str, str]], model_uri: str,
            label: str) -> Run:
    """Start the service of checkout `code_root` on a fresh PostgreSQL schema, drive it, stop it, count."""
    schema = Schema(args.postgres_url)
    key, admin_key = new_key(), new_key()
    env = {**os.environ, "TRIAGE_DATABASE_URL": schema.url, "TRIAGE_MODEL_URI": model_uri,
           "TRIAGE_API_KEYS": f"load-bench:intake:{key},load-metrics:admin:{admin_key}", "TRIAGE_LOG_LEVEL": "INFO"}
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench_load_server_", ignore_cleanup_errors=True) as tmp_name:
        log_path = Path(tmp_name) / "server.log"
        # One metrics directory for all workers, as `triage serve` and the systemd unit give them: without it
        # each uvicorn worker counts alone and a scrape reads whichever worker answered it.
        metrics_dir = Path(tmp_name) / "metrics"
        metrics_dir.mkdir(mode=0o700)
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        process = start_server(port, args.workers, env, log_path, code_root)
        prefix = f"LOAD-{uuid.uuid4().hex[:6]}-"
        try:
            startup_s = wait_ready(process, log_path, args.workers)
            print(f"[{label}] {args.workers} workers up in {startup_s:.1f} s on port {port}; schema {schema.name}; "
                  f"{len(messages)} messages; load average {load_average()}")
            base_url = f"http://127.0.0.1:{port}"
            warm, _ = asyncio.run(drive(base_url, key, messages, prefix, min(args.clients, 10), 60.0, args.warmup,
                                         library=args.client))
            spread: dict[str, dict[str, int] | None] = {}
            sampler = threading.Timer(args.seconds / 2, lambda: spread.update(mid_run=connections_per_process(port)))
            sampler.start()
            server_before = server_figures(base_url, admin_key, process)
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            outcome, wall_s = asyncio.run(drive(base_url, key, messages, prefix, args.clients, args.seconds,
                                                args.max_requests, offset=args.warmup, library=args.client))
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            server = server_summary(server_before, server_figures(base_url, admin_key, process),
                                    len(outcome.latencies_ms), wall_s, args.workers)
            sampler.cancel()
            opened: tuple[Outcome, float] | None = None
            if args.then_rate:
                opened = asyncio.run(drive_rate(base_url, key, messages, prefix, args.then_rate, args.seconds,
                                                args.clients, offset=args.warmup + args.max_requests,
                                                library=args.client))
        finally:
            exit_code = stop_server(process)
            server_log = log_path.read_text(errors="replace")
    try:
        stored = schema.predictions(prefix)
    finally:
        schema.close()
    cpu_client_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return Run(code_root, startup_s, exit_code, server_log, warm, outcome, wall_s, opened, stored, spread,
               cpu_client_s, server)


def store_counts(run: Run) -> tuple[dict[str, int], bool]:
    """Every 200 stored exactly once, and nothing stored that was not answered 200."""
    phases = [run.warm, run.outcome] + ([run.opened[0]] if run.opened else [])
    ok_ids = {case_id for phase in phases for case_id in phase.ok_case_ids}
    stored_set = set(run.stored)
    check = {
        "ok_responses_all_phases": sum(len(phase.ok_case_ids) for phase in phases),
        "prediction_rows": len(run.stored),
        "distinct_case_ids_stored": len(stored_set),
        "ok_but_not_stored": len(ok_ids - stored_set),
        "stored_twice": len(run.stored) - len(stored_set),
        "stored_without_ok_response": len(stored_set - ok_ids),
        "five_xx": sum(n for phase in phases for status, n in phase.statuses.items() if status.startswith("5")),
    }
    nothing_lost = (check["prediction_rows"] == check["ok_responses_all_phases"]
                    and check["ok_but_not_stored"] == 0 and check["stored_twice"] == 0)
    return check, nothing_lost


def targets(run: Run, check: dict[str, int], nothing_lost: bool) -> dict[str, Any]:
    """This benchmark's first target (p99 ≤ 100 ms) and issue 15's (≥ 250 requests/s, p99 ≤ 500 ms)."""
    lat = percentiles(run.outcome.latencies_ms)
    rps = summary(run.outcome, run.wall_s)["throughput_rps"]
    target: dict[str, Any] = {
        "what": f"no 5xx, every 200 stored exactly once, p99 ≤ {TARGET_P99_MS:g} ms",
        "no_5xx": check["five_xx"] == 0,
        "nothing_lost_or_doubled": nothing_lost,
        "p99_ms": lat["p99_ms"],
        "p99_met": lat["p99_ms"] is not None and lat["p99_ms"] <= TARGET_P99_MS,
    }
    target["met"] = target["no_5xx"] and target["nothing_lost_or_doubled"] and target["p99_met"]
    throughput_met = rps is not None and rps >= TARGET_RPS
    p99_met = lat["p99_ms"] is not None and lat["p99_ms"] <= TARGET_P99_UNDER_LOAD_MS
    target["issue_15"] = {
        "what": f"≥ {TARGET_RPS:g} requests/s and p99 ≤ {TARGET_P99_UNDER_LOAD_MS:g} ms under "
                f"{TARGET_CLIENTS} clients, no 5xx, nothing lost",
        "throughput_rps": rps, "throughput_met": throughput_met, "p99_met": p99_met,
        "met": throughput_met and p99_met and target["no_5xx"] and nothing_lost,
    }
    return target


def git_commit(root: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=20_000, help="stop after this many requests")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first (stored and counted too)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--then-rate", type=float, default=None, metavar="RPS",
                        help="after the closed loop, an open loop at this many requests/s for --seconds "
                             "(latency below saturation)")
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp",
                        help="the load generator's HTTP client (see Poster: httpx costs about 4x the CPU)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=DEFAULT_MODEL_URI)
    parser.add_argument("--old-root", type=Path, default=None,
                        help="another checkout (e.g. a worktree of the commit before a change) whose service is "
                             "driven the same way right after this one's, for a same-run comparison; --model must "
                             "be one both load (a bundle folder)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.max_requests < 1 or args.workers < 1 or args.warmup < 0:
        parser.error("--clients, --seconds, --max-requests and --workers must be positive")

    measured_at, started = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
    load_start = load_average()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    data_path, data_note = args.data, None
    if not data_path.exists():
        data_note = f"{args.data} is absent (the shared data is not on this machine): using the demo data"
        print(data_note)
        data_path = DEMO_DATA
    messages, data_info = load_messages(data_path)

    with tempfile.TemporaryDirectory(prefix="bench_load_", ignore_cleanup_errors=True) as tmp_name:
        model_uri, _model, model_info = resolve_model(args.model, True, Path(tmp_name))
        del _model  # the server loads its own copy; this process only needed to know it loads
        run = measure(ROOT, args, messages, model_uri, "this checkout")
        old = None if args.old_root is None else measure(args.old_root.resolve(), args, messages, model_uri,
                                                         f"old: {args.old_root}")
    load_end = load_average()

    outcome, wall_s, opened = run.outcome, run.wall_s, run.opened
    store_check, nothing_lost = store_counts(run)
    target = targets(run, store_check, nothing_lost)
    lat = percentiles(outcome.latencies_ms)
    sent = len(outcome.sent_case_ids)
    report = {
        "data": {**data_info, "note": data_note,
                 "reuse": f"{sent + args.warmup} requests over {len(messages)} messages: texts reused in file "
                          "order after the file is used up, each with a new case_id"},
        "server": {"command": f"uvicorn serving.app:create_app --factory --workers {args.workers} --host 127.0.0.1 "
                              f"--log-level info --timeout-keep-alive {KEEP_ALIVE_SECONDS}",
                   "workers": args.workers, "startup_s": round(run.startup_s, 1),
                   "code": {"root": str(ROOT), "commit": git_commit(ROOT)},
                   "exit_code_after_sigterm": run.exit_code, "store": f"{redact(args.postgres_url)}, a schema made "
                   "for the run and dropped after it", "log_lines": run.server_log.count("\n"),
                   "sent_texts_found_in_log": texts_in_log(run.server_log, messages, sent + args.warmup),
                   # uvicorn's supervisor kills and replaces a worker that misses its health check; the
                   # requests that worker held end as ReadError on the client.
                   "workers_replaced": run.server_log.count("] died"),
                   "log_warnings": [line[:300] for line in run.server_log.splitlines()
                                    if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)][:20]},
        "model": model_info,
        "load": {"clients": args.clients, "seconds": args.seconds, "max_requests": args.max_requests,
                 "warmup_requests": args.warmup,
                 "client": f"{CLIENT_CLASSES[args.client]}, one event loop, keep-alive"},
        "results": {**summary(outcome, wall_s), "load_generator_cpu_s": round(run.cpu_client_s, 1),
                    "connections_per_worker_mid_run": run.spread.get("mid_run"), "server": run.server},
        "results_open_loop": None if opened is None else {
            "rate_rps": args.then_rate, "max_in_flight": args.clients,
            "latency_from": "the moment each request was due (includes waiting for a free client)",
            **summary(*opened)},
        "store_check": store_check,
        "target": target,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_start": load_start, "load_average_end": load_end},
        "command": shlex.join([os.path.relpath(sys.executable, Path.cwd()), *sys.argv]),
        "duration_s": round(time.perf_counter() - started, 1),
        "measured_at": measured_at,
    }
    if old is not None:
        old_check, old_nothing_lost = store_counts(old)
        old_summary = summary(old.outcome, old.wall_s)
        new_rps, old_rps = report["results"]["throughput_rps"], old_summary["throughput_rps"]
        report["old_code"] = {
            "code": {"root": str(old.code_root), "commit": git_commit(old.code_root)},
            "note": "driven right after this checkout's service, same model, data, clients and seconds; "
                    "a fresh schema of its own",
            "results": {**old_summary, "load_generator_cpu_s": round(old.cpu_client_s, 1), "server": old.server},
            "results_open_loop": None if old.opened is None else summary(*old.opened),
            "store_check": old_check,
            "nothing_lost_or_doubled": old_nothing_lost,
            "throughput_ratio_new_over_old": None if not (new_rps and old_rps) else round(new_rps / old_rps, 3),
        }
    report["notes"] = findings(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    r = report["results"]
    print(f"{sent} requests in {r['wall_s']} s from {args.clients} clients: {r['throughput_rps']:.1f} ok/s; "
          f"by status {r['by_status']}")
    if lat["p50_ms"] is not None:
        print(f"latency of 200s: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
              f"max {lat['max_ms']:.1f} ms")
    if opened is not None:
        o = report["results_open_loop"]
        print(f"open loop at {args.then_rate:g}/s: {o['ok']} ok, by status {o['by_status']}; p50 {o['p50_ms']:.1f} ms, "
              f"p95 {o['p95_ms']:.1f} ms, p99 {o['p99_ms']:.1f} ms")
    print(f"server over the closed loop: {r['server']}")
    print(f"store: {store_check}")
    print(f"target ({target['what']}): {'met' if target['met'] else 'NOT met'}: no 5xx {target['no_5xx']}, "
          f"nothing lost {nothing_lost}, p99 ≤ {TARGET_P99_MS:g} ms {target['p99_met']}")
    i15 = target["issue_15"]
    print(f"issue 15 target ({i15['what']}): {'met' if i15['met'] else 'NOT met'}")
    if old is not None:
        o = report["old_code"]
        old_r = o["results"]
        print(f"old code ({o['code']['commit']}): {old_r['throughput_rps']:.1f} ok/s, p50 {old_r['p50_ms']:.1f} ms, "
              f"p99 {old_r['p99_ms']:.1f} ms; this checkout / old = {o['throughput_ratio_new_over_old']}x; "
              f"server {old_r['server']}")
        if o["results_open_loop"]:
            oo = o["results_open_loop"]
            print(f"old code open loop: p50 {oo['p50_ms']:.1f} ms, p95 {oo['p95_ms']:.1f} ms, "
                  f"p99 {oo['p99_ms']:.1f} ms")
    print(f"load average start {load_start}, end {load_end}; {report['duration_s']} s; written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
