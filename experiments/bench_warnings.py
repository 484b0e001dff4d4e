"""What issuing warnings adds to one triage call: the service path with and without the warning desk.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db .venv/bin/python experiments/bench_warnings.py \
        [--model models:/grievance-triage@champion] [--rounds 2] [--out experiments/results/warnings.json]

Each round triages the demo cases one call each, in time order, into a fresh SQLite audit store with its own
hot-issue detector (local mode, as one SQLite process serves), once without warnings (the baseline) and once
with `serving.warning_desk.WarningDesk` (district lookup, warning + event + outbox row in one transaction for
every red and yellow case and every new alert); the two alternate so drift hits both. Reported: median and
p95 latency over all cases and over the cases that issue a warning, and the ratios to the baseline. Only
numbers are written; no case text.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))


def _round(model: Any, requests: list[Any], with_warnings: bool) -> tuple[list[float], list[bool], int]:
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
        desk = WarningDesk.open(store) if with_warnings else None
        latencies, warned = [], []
        try:
            for request in requests:
                started = time.perf_counter()
                (answer,) = triage_cases(model, [request], store=store, hotspots=hotspots, warnings=desk)
                latencies.append(1000 * (time.perf_counter() - started))
                warned.append(bool(answer.risk and answer.risk.level in ("red", "yellow")))
            issued = desk.book.summary().total if desk else 0
        finally:
            hotspots.close()
            store.dispose()
    return latencies, warned, issued


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return {"median_ms": round(statistics.median(ordered), 3), "p95_ms": round(p95, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/grievance-triage@champion")
    parser.add_argument("--rounds", type=int, default=2)
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
    runs: dict[str, list[float]] = {"baseline": [], "warnings": []}
    warned_runs: dict[str, list[float]] = {"baseline": [], "warnings": []}
    issued = 0
    for _ in range(args.rounds):
        for mode in ("baseline", "warnings"):
            latencies, warned, count = _round(model, requests, mode == "warnings")
            runs[mode] += latencies
            warned_runs[mode] += [lat for lat, w in zip(latencies, warned, strict=True) if w]
            issued = max(issued, count)
    result: dict[str, Any] = {
        "cases_per_round": len(requests), "rounds": args.rounds, "warnings_issued_per_round": issued,
        "all_cases": {mode: _stats(values) for mode, values in runs.items()},
        "warned_cases": {mode: _stats(values) for mode, values in warned_runs.items()},
    }
    for part in ("all_cases", "warned_cases"):
        base, new = result[part]["baseline"]["median_ms"], result[part]["warnings"]["median_ms"]
        result[part]["median_ratio"] = round(new / base, 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
