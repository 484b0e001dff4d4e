"""Overhead of the Prometheus metrics on POST /v1/triage: p50 with metrics on vs off, in the same run.

    PYTHONPATH=. .venv/bin/python experiments/bench_metrics_overhead.py [--rounds 400] [--blocks 5]
        [--output experiments/results/metrics_overhead.json]

Two uvicorn servers (``serving.app:create_app --factory``, one worker each) run side by side on this
machine with the same model (the router fitted on the demo data, as the test fixtures fit it), each with its
own SQLite audit store and spool: one with ``TRIAGE_METRICS_ENABLED=true`` and a fresh
``PROMETHEUS_MULTIPROC_DIR`` (multiprocess mode, as `triage serve` and the systemd unit run it), the other
with ``TRIAGE_METRICS_ENABLED=false``. One client sends the demo cases (each with a new case_id, so every
request is scored and stored) to both, interleaved: in each round one request to each server, the order
alternating between rounds, so drift in the machine's load falls on both alike. The metrics server is
scraped (GET /metrics) every ``--scrape-every`` rounds, as Prometheus would be, and those scrapes are not
timed. ``--blocks`` blocks of ``--rounds`` rounds after ``--warmup`` untimed rounds.

Reported: per server p50 / p90 of the client-side latency over all rounds, the ratio of p50s (on / off),
and the ratio of p50s per block (its median and range: how stable the figure is). Target: p50 within 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEMO = ROOT / "training" / "demo_data" / "grievances.csv"
KEY = "bench-intake-key-7f3a9c2e51d84b06"
ADMIN = "bench-admin-key-0c5e8d7a3b9f4162"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_bundle(directory: Path) -> Path:
    """The router fitted on the demo training split (tests/conftest.py's fixture, without pytest)."""
    from models.bundle import TriageBundle
    from models.router import build_router
    from models.thresholds import choose_thresholds
    from training.config import TrainConfig
    from training.loading import load_cases
    from training.splitting import train_test_split_grouped

    config = TrainConfig.model_validate({"threshold_folds": 3, "classifier": {"calibration_folds": 3}})
    cases = load_cases([DEMO], require_department=True, training=True).frame
    train, test = train_test_split_grouped(cases, config.test_size, config.seed)
    router = build_router(config.features, config.classifier, config.seed)
    router.fit(train[["title", "body"]], np.asarray(train["department"], dtype=object))
    thresholds = choose_thresholds(test["department"], router.predict_proba(test[["title", "body"]]),
                                   list(router.classes_), 0.9, min_support=3)
    TriageBundle(router=router, thresholds=thresholds, target_precision=0.9,
                 metadata={"model_name": "grievance-triage", "model_version": "bench"}).save(directory)
    return directory


class Server:
    def __init__(self, name: str, env: dict[str, str], work: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", "1", "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400, help="rounds per block (one request to each server)")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--scrape-every", type=int, default=100)
    parser.add_argument("--output", type=Path, default=ROOT / "experiments" / "results" / "metrics_overhead.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    servers: list[Server] = []
    try:
        bundle = demo_bundle(work / "bundle")
        base = {**os.environ, "TRIAGE_MODEL_URI": str(bundle), "TRIAGE_LOG_LEVEL": "WARNING",
                "TRIAGE_API_KEYS": f"bench:intake:{KEY},ops:admin:{ADMIN}", "TRIAGE_HOTSPOT_SHARING": "local"}
        base.pop("PROMETHEUS_MULTIPROC_DIR", None)
        (work / "prom").mkdir()
        on = Server("metrics-on", {**base, "TRIAGE_METRICS_ENABLED": "true",
                                   "PROMETHEUS_MULTIPROC_DIR": str(work / "prom"),
                                   "TRIAGE_DATABASE_URL": f"sqlite:///{work / 'on.db'}",
                                   "TRIAGE_SPOOL_DIR": str(work / "spool-on")}, work)
        off = Server("metrics-off", {**base, "TRIAGE_METRICS_ENABLED": "false",
                                     "TRIAGE_DATABASE_URL": f"sqlite:///{work / 'off.db'}",
                                     "TRIAGE_SPOOL_DIR": str(work / "spool-off")}, work)
        servers = [on, off]
        for server in servers:
            server.wait_ready()
        cases = pd.read_csv(DEMO, dtype=str).fillna("")
        texts = list(zip(cases["title"], cases["body"], strict=True))
        latencies: dict[str, list[float]] = {"on": [], "off": []}
        blocks: list[dict[str, float]] = []
        clients = {"on": httpx.Client(base_url=on.url, headers={"X-API-Key": KEY}, timeout=30),
                   "off": httpx.Client(base_url=off.url, headers={"X-API-Key": KEY}, timeout=30)}
        scraper = httpx.Client(base_url=on.url, headers={"X-API-Key": ADMIN}, timeout=30)
        n = 0
        total_rounds = args.warmup + args.rounds * args.blocks
        block_lat: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(total_rounds):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            for which in order:
                title, body = texts[n % len(texts)]
                n += 1
                payload = {"case_id": f"B{n:07d}", "title": title, "body": body}
                started = time.perf_counter()
                answer = clients[which].post("/v1/triage", json=payload)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise RuntimeError(f"{which}: {answer.status_code} {answer.text[:200]}")
                if r >= args.warmup:
                    latencies[which].append(elapsed)
                    block_lat[which].append(elapsed)
            if r % args.scrape_every == 0:
                assert scraper.get("/metrics").status_code == 200
            if r >= args.warmup and (r - args.warmup + 1) % args.rounds == 0:
                p_on, p_off = float(np.median(block_lat["on"])), float(np.median(block_lat["off"]))
                blocks.append({"p50_on_ms": round(p_on, 3), "p50_off_ms": round(p_off, 3),
                               "ratio": round(p_on / p_off, 4)})
                block_lat = {"on": [], "off": []}
        for client in (*clients.values(), scraper):
            client.close()
        off_metrics = httpx.get(f"{off.url}/metrics", headers={"X-API-Key": ADMIN}, timeout=30).status_code
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    def summary(values: list[float]) -> dict[str, float]:
        return {"n": len(values), "p50_ms": round(float(np.median(values)), 3),
                "p90_ms": round(float(np.percentile(values, 90)), 3), "mean_ms": round(float(np.mean(values)), 3)}

    ratios = [b["ratio"] for b in blocks]
    p50_ratio = float(np.median(latencies["on"]) / np.median(latencies["off"]))
    report: dict[str, Any] = {
        "what": "POST /v1/triage latency (client side, sequential), metrics on (multiprocess mode, scraped every "
                f"{args.scrape_every} rounds) vs off, interleaved in one run",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "rounds_per_block": args.rounds, "blocks": args.blocks, "warmup_rounds": args.warmup,
        "metrics_on": summary(latencies["on"]),
        "metrics_off": summary(latencies["off"]),
        "p50_ratio_on_over_off": round(p50_ratio, 4),
        "block_ratios": {"median": round(float(np.median(ratios)), 4), "min": min(ratios), "max": max(ratios),
                         "blocks": blocks},
        "metrics_off_answers": off_metrics,
        "target": "p50 with metrics on within 5% of off (ratio <= 1.05)",
        "within_target": p50_ratio <= 1.05,
    }
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("metrics_on", "metrics_off", "p50_ratio_on_over_off", "block_ratios",
                                              "within_target")}, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
