"""What warnings cost the triage path: one triage call each with and without the warning issuer running.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db .venv/bin/python experiments/bench_warnings.py \
        [--model models:/grievance-triage@champion] [--rounds 2] [--out experiments/results/warnings.json]

Each round triages the demo cases one call each, in time order, into a fresh SQLite audit store with its own
hot-issue detector (local mode, as one SQLite process serves): the baseline without warnings, then the same
with `WarningDesk.issue_new` running in a thread every 0.5 s as the service runs it (it competes for the
SQLite write lock); the two alternate so drift hits both. Reported: median and p95 triage latency and their
ratio to the baseline, the warnings issued, and the issuer's time per warning. An earlier design issued on the
request path; `--inline` measures that cost too (the desk's round run after each call, inside the timing).
Only numbers are written; no case text.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))


def _round(model: Any, requests: list[Any], mode: str) -> dict[str, Any]:
    from models.hotspot_settings import load_hotspot_config
    from serving.hotspot_service import HotspotService
    from serving.triage_service import triage_cases
    from serving.warning_desk import WarningDesk
    from store import Store, upgrade_database

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/audit.db"
        upgrade_database(url)
        store = Store.from_url(url)
        hotspots = HotspotService.restore(store, load_hotspot_config(), shared=False)
        desk = WarningDesk.open(store) if mode != "baseline" else None
        stop, issuer_seconds = threading.Event(), [0.0]

        def issue() -> None:
            while not stop.wait(0.5):
                started = time.perf_counter()
                desk.issue_new()
                issuer_seconds[0] += time.perf_counter() - started

        thread = threading.Thread(target=issue, daemon=True) if mode == "background" else None
        if thread is not None:
            thread.start()
        latencies = []
        try:
            for request in requests:
                started = time.perf_counter()
                triage_cases(model, [request], store=store, hotspots=hotspots)
                if mode == "inline":
                    desk.issue_new()
                latencies.append(1000 * (time.perf_counter() - started))
            stop.set()
            if thread is not None:
                thread.join()
            if desk is not None:
                desk.issue_new()
            issued = desk.book.summary().total if desk else 0
        finally:
            hotspots.close()
            store.dispose()
    return {"latencies": latencies, "issued": issued, "issuer_seconds": issuer_seconds[0]}


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return {"median_ms": round(statistics.median(ordered), 3), "p95_ms": round(p95, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/grievance-triage@champion")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--inline", action="store_true", help="also measure issuing on the request path")
    parser.add_argument("--out", type=Path, default=HERE / "experiments" / "results" / "warnings.json")
    args = parser.parse_args()

    from command.demo_seed import demo_requests
    from features.text import init_tokenizer
    from serving.model_reload import load_and_warm

    init_tokenizer()
    model, error = load_and_warm(args.model)
    if model is None:
        raise SystemExit(f"no model: {error}")
    requests = demo_requests()
    modes = ["baseline", "background", *(["inline"] if args.inline else [])]
    runs: dict[str, list[float]] = {mode: [] for mode in modes}
    issued, issuer_seconds = 0, 0.0
    for _ in range(args.rounds):
        for mode in modes:
            done = _round(model, requests, mode)
            runs[mode] += done["latencies"]
            if mode == "background":
                issued, issuer_seconds = done["issued"], issuer_seconds + done["issuer_seconds"]
    result: dict[str, Any] = {
        "command": " ".join(sys.argv), "cases_per_round": len(requests), "rounds": args.rounds,
        "warnings_issued_per_round": issued,
        "issuer_ms_per_warning": round(1000 * issuer_seconds / max(1, issued * args.rounds), 3),
        "triage": {mode: _stats(values) for mode, values in runs.items()},
    }
    base = result["triage"]["baseline"]["median_ms"]
    for mode in modes[1:]:
        result["triage"][mode]["median_ratio"] = round(result["triage"][mode]["median_ms"] / base, 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
