"""What the shared hot-issue feed costs: per-case time of the replica-safe hot-issue step, against the
detector alone, in one run.

    .venv/bin/python experiments/bench_hotspot_feed.py [--n 1000] [--postgres-url URL | --no-postgres]

Cases: the newest `--n` messages of ../shared/data/tipdm2020/messages_unlabeled.csv (oldest first), or the
demo data where the shared data is absent. Configurations, each on a fresh database:

- ``detector``: `HotspotDetector.observe` alone (tokenisation included): the baseline;
- ``local_<db>``: `HotspotService.observe` in local mode (`TRIAGE_HOTSPOT_SHARING=local`): the detector,
  plus member and alert inserts of burst cases;
- ``service_<db>``: `HotspotService.observe` of one replica in feed mode as the app runs it (a follower thread catches
  up in the background): the feed append (with the case row), catch-up read and member/alert inserts in
  one locked transaction;
- ``replicas2_<db>``: two `HotspotService`s (two replicas' worth of state, one store each) in two threads,
  sending alternate cases: wall time per case, and how many cases each replica had to catch up on.

Part of what ``service`` measures is moved, not added: the case row it inserts is the one the triage
transaction would otherwise insert. Writes experiments/results/hotspot_feed.json (with the load average:
the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.hotspot_settings import load_hotspot_config  # noqa: E402
from models.hotspots import CaseEvent, HotspotDetector, case_terms  # noqa: E402
from serving.hotspot_service import HotspotService  # noqa: E402
from store import Store, upgrade_database  # noqa: E402
from store.scratch import admin_engine, create_schema, drop_schema, schema_url  # noqa: E402
from training.loading import COLUMN_ALIASES  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "tipdm2020" / "messages_unlabeled.csv"
DEMO = ROOT / "training" / "demo_data" / "grievances.csv"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESULTS = ROOT / "experiments" / "results" / "hotspot_feed.json"

Case = tuple[str, datetime, str, str, str | None]


def load_cases(n: int) -> tuple[list[Case], str]:
    path = SHARED if SHARED.exists() else DEMO
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = raw.rename(columns={c: COLUMN_ALIASES.get(c.strip(), c.strip()) for c in raw.columns})
    frame["when"] = pd.to_datetime(frame["created_at"].str.strip(), format="mixed", errors="coerce")
    frame = frame[frame["when"].notna()].sort_values("when", kind="stable").tail(n)
    cases = [
        (f"F{i:06d}", row.when.to_pydatetime(), row.title, row.body, str(getattr(row, "reporter_id", "")) or None)
        for i, row in enumerate(frame.itertuples(index=False))
    ]
    return cases, os.path.relpath(path, ROOT)


@contextmanager
def databases(postgres_url: str | None) -> Iterator[tuple[list[str], Callable[[str], str]]]:
    """The kinds of database reachable, and a factory of fresh, migrated database URLs of a kind: SQLite
    files, or PostgreSQL schemas dropped afterwards."""
    admin = None
    if postgres_url:
        admin, reason = admin_engine(postgres_url)
        if admin is None:
            print(f"PostgreSQL skipped: {reason}")
    kinds = ["sqlite"] + (["postgresql"] if admin is not None else [])
    with TemporaryDirectory(prefix="bench-feed-") as tmp:
        schemas: list[str] = []

        def fresh(kind: str) -> str:
            if kind == "sqlite":
                url = f"sqlite:///{Path(tmp) / f'{time.monotonic_ns()}.db'}"
            else:
                assert admin is not None and postgres_url
                schemas.append(create_schema(admin, "bench_feed_"))
                url = schema_url(postgres_url, schemas[-1])
            upgrade_database(url)
            return url

        try:
            yield kinds, fresh
        finally:
            if admin is not None:
                for schema in schemas:
                    drop_schema(admin, schema)
                admin.dispose()


def per_case_ms(call: Callable[[Case], Any], cases: list[Case]) -> list[float]:
    times = []
    for case in cases:
        started = time.perf_counter()
        call(case)
        times.append(1000 * (time.perf_counter() - started))
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "cases": len(times),
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
        "mean_ms": statistics.fmean(ordered),
    }


def run(n: int, postgres_url: str | None) -> dict[str, Any]:
    config = load_hotspot_config(None)
    cases, source = load_cases(n)
    for case in cases:  # warm jieba's cache for every configuration alike (serving's router warms most of it)
        case_terms(case[2], case[3], config)
    results: dict[str, Any] = {}
    detector = HotspotDetector(config)
    results["detector"] = summary(per_case_ms(lambda c: detector.observe(CaseEvent(*c, None)), cases))
    with databases(postgres_url) as (kinds, fresh):
        for kind in kinds:
            with Store.from_url(fresh(kind)) as store:
                local = HotspotService.restore(store, config, shared=False)
                results[f"local_{kind}"] = summary(per_case_ms(lambda c, s=local: s.observe(*c), cases))
                local.close()
            with Store.from_url(fresh(kind)) as store:
                service = HotspotService.restore(store, config)
                service.follow(0.5)  # as the app runs it
                results[f"service_{kind}"] = summary(per_case_ms(lambda c, s=service: s.observe(*c), cases))
                service.close()
            results[f"replicas2_{kind}"] = two_replicas(fresh(kind), config, cases)
    base = results["detector"]["p50_ms"]
    for figures in results.values():
        figures["p50_ratio_to_detector"] = figures["p50_ms"] / base
    return {"data": source, "cases": len(cases), "results": results}


def two_replicas(url: str, config: Any, cases: list[Case]) -> dict[str, Any]:
    """Two replicas (each its own store and state) in two threads, alternate cases, wall time per case."""
    stores = [Store.from_url(url) for _ in range(2)]
    try:
        services = [HotspotService.restore(store, config) for store in stores]
        for service in services:
            service.follow(0.5)
        caught_up = [0, 0]
        times: list[list[float]] = [[], []]

        def replica(k: int) -> None:
            service = services[k]
            for case in cases[k::2]:
                before = service.feed_seq
                started = time.perf_counter()
                service.observe(*case)
                times[k].append(1000 * (time.perf_counter() - started))
                caught_up[k] += service.feed_seq - before - 1

        started = time.perf_counter()
        threads = [threading.Thread(target=replica, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        for service in services:
            service.close()
            service.sync()
        same = services[0].detector.snapshot() == services[1].detector.snapshot()
        both = summary(times[0] + times[1])
        return {**both, "wall_ms_per_case": 1000 * wall / len(cases), "caught_up_cases": caught_up,
                "replicas_agree": same}
    finally:
        for store in stores:
            store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    report = run(args.n, None if args.no_postgres else args.postgres_url)
    report["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "load_average_start": load_before, "load_average_end": os.getloadavg()}
    report["command"] = "python experiments/bench_hotspot_feed.py " + " ".join(sys.argv[1:])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{'configuration':<22}{'p50 ms':>9}{'p95 ms':>9}{'x detector':>12}  notes")
    for name, fig in report["results"].items():
        notes = ""
        if "wall_ms_per_case" in fig:
            notes = f"wall {fig['wall_ms_per_case']:.2f} ms/case, caught up {fig['caught_up_cases']}, " \
                    f"agree={fig['replicas_agree']}"
        print(f"{name:<22}{fig['p50_ms']:>9.2f}{fig['p95_ms']:>9.2f}{fig['p50_ratio_to_detector']:>12.2f}  {notes}")
    print(f"load average {load_before} -> {report['machine']['load_average_end']}; written to {args.output}")


if __name__ == "__main__":
    main()
