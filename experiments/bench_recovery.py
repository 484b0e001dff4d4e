"""After a database outage: does the spool drain while requests keep coming at a steady rate?

    .venv/bin/python experiments/bench_recovery.py [--rate 40] [--outage-seconds 20] [--after-seconds 30]

The app runs in this process on a fresh SQLite store with the demo model (trained into a temporary MLflow
store). Requests go at `--rate` per second, open loop, for the whole run. During the outage the store's
methods fail as an unreachable database does (OperationalError), so answers are spooled; then the database
"returns" and the run goes on for `--after-seconds`. Reported: requests per phase and status, how many were
spooled, when new writes reached the database again, when the spool was empty, and that every
acknowledged case is stored exactly once. Writes experiments/results/recovery.json.

Issue 13 asked that after an outage the spool drain while load continues at 40 requests/s (it never did:
under load every new write joined the backlog).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from bench_load import load_average, resolve_model  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.auth import new_key  # noqa: E402
from serving.dependencies import services_of  # noqa: E402
from serving.settings import DEFAULT_MODEL_URI, Settings  # noqa: E402

RESULTS = ROOT / "experiments" / "results" / "recovery.json"
FAILING = ("record_case_and_prediction", "existing_prediction", "hotspot_local_intake", "add_hotspot_member",
           "add_alert", "save_snapshot", "ping")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--before-seconds", type=float, default=5.0)
    parser.add_argument("--outage-seconds", type=float, default=20.0)
    parser.add_argument("--after-seconds", type=float, default=30.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="bench_recovery_", ignore_cleanup_errors=True) as tmp_name:
        tmp = Path(tmp_name)
        model_uri, _model, model_info = resolve_model(DEFAULT_MODEL_URI, True, tmp)
        del _model
        key = new_key()
        settings = Settings(model_uri=model_uri, database_url=f"sqlite:///{tmp / 'triage.db'}", spool_dir=tmp / "spool",
                            api_keys=f"bench:intake:{key}", spool_retry_initial_seconds=0.5, spool_retry_max_seconds=2)
        down = {"now": False}
        with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
            store, writer = services_of(client.app).store, services_of(client.app).writer
            for name in FAILING:
                real = getattr(store, name)

                def guarded(*a: Any, _real: Any = real, **k: Any) -> Any:
                    if down["now"]:
                        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
                    return _real(*a, **k)

                setattr(store, name, guarded)
            phases = [("before", args.before_seconds, False), ("outage", args.outage_seconds, True),
                      ("after", args.after_seconds, False)]
            statuses: dict[str, Counter[int]] = {}
            acknowledged: list[str] = []
            spooled: Counter[str] = Counter()
            events: dict[str, float | None] = {"back_at": None, "first_direct_write_s": None, "spool_empty_s": None}
            peak_pending = 0
            interval, sent = 1.0 / args.rate, 0
            started = time.perf_counter()
            for phase, seconds, is_down in phases:
                down["now"] = is_down
                phase_start = time.perf_counter()
                if phase == "after":
                    events["back_at"] = round(phase_start - started, 2)
                statuses[phase] = Counter()
                n = int(seconds * args.rate)
                for i in range(n):
                    due = phase_start + i * interval
                    wait = due - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    case_id = f"REC-{phase}-{uuid.uuid4().hex[:8]}"
                    answer = client.post("/v1/triage", json={"case_id": case_id, "title": f"小区路灯不亮{sent % 50}",
                                                             "body": "门口路灯坏了一个月，晚上很黑，请尽快修理。"})
                    sent += 1
                    statuses[phase][answer.status_code] += 1
                    if answer.status_code == 200:
                        acknowledged.append(case_id)
                        if answer.json()["prediction_id"] is None:
                            spooled[phase] += 1
                        elif phase == "after" and events["first_direct_write_s"] is None:
                            events["first_direct_write_s"] = round(time.perf_counter() - phase_start, 2)
                    pending = writer.spool.pending()
                    peak_pending = max(peak_pending, pending)
                    if phase == "after" and pending == 0 and events["spool_empty_s"] is None:
                        events["spool_empty_s"] = round(time.perf_counter() - phase_start, 2)
            achieved = sent / (time.perf_counter() - started)
            deadline = time.monotonic() + 60
            while writer.spool.pending() and time.monotonic() < deadline:
                time.sleep(0.2)
            stored = Counter({c: len(store.predictions_for(c)) for c in acknowledged})
    report = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": {"cpus": os.cpu_count(),
                                                                       "load_average_at_start": load_average()},
        "store": "SQLite (in process, httpx ASGI transport)", "model": model_info, "rate_requested": args.rate,
        "rate_achieved": round(achieved, 1), "statuses": {k: dict(v) for k, v in statuses.items()},
        "spooled_answers": dict(spooled), "peak_spool_records": peak_pending, **events,
        "acknowledged": len(acknowledged), "stored_once": sum(1 for v in stored.values() if v == 1),
        "missing": sum(1 for v in stored.values() if v == 0), "duplicated": sum(1 for v in stored.values() if v > 1),
        "drained_while_load_continued": events["spool_empty_s"] is not None,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("rate_achieved", "statuses", "spooled_answers", "peak_spool_records",
                                              "first_direct_write_s", "spool_empty_s", "acknowledged", "stored_once",
                                              "missing", "duplicated")}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
