"""Fill an empty audit store with the demo cases, so a newcomer's `make run` has a queue to audit.

The cases go through the very path the API uses (`triage_cases`: router, hot-issue detector, risk model,
store, all opened by the server's own `serving.services.open_services`), in time order, so the review
queue, the case views, the hot-issue alerts and the dashboard all show real predictions of the served model.
A store that already holds predictions is left alone: the seed runs once, and never mixes demo cases into a
store in use.

    python -m command.demo_seed [--data CSV] [--limit N]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from serving.schemas import TriageRequest
from serving.services import open_services, open_store
from serving.settings import Settings
from serving.triage_service import triage_cases
from training.loading import DataError, load_cases

logger = logging.getLogger(__name__)

DEMO_DATA = Path(__file__).resolve().parent.parent / "training" / "demo_data" / "grievances.csv"
BATCH = 100


def demo_requests(path: Path = DEMO_DATA, limit: int | None = None) -> list[TriageRequest]:
    """The demo cases as triage requests, oldest first (the newest `limit` of them if given), with their
    title and body as written: the loader's normalised text (half-width punctuation) is what the model
    reads, not what a ticket system sends, and the reviewer page shows what was sent."""
    frame = load_cases([path], require_department=False).frame
    written = pd.read_csv(path, dtype=str, keep_default_na=False).drop_duplicates("case_id", keep="last")
    as_written = dict(zip(written["case_id"], zip(written["title"], written["body"], strict=True), strict=True))
    frame = frame.sort_values("created_at", kind="stable")
    if limit is not None:
        frame = frame.tail(limit)
    requests = []
    for row in frame.itertuples(index=False):
        created = None if pd.isna(row.created_at) else pd.Timestamp(row.created_at).tz_localize("Asia/Shanghai")
        reporter = getattr(row, "reporter_id", None)
        requests.append(
            TriageRequest(
                case_id=str(row.case_id),
                title=as_written.get(str(row.case_id), (row.title, row.body))[0] or "",
                body=as_written.get(str(row.case_id), (row.title, row.body))[1] or "",
                created_at=None if created is None else created.to_pydatetime(),
                reporter_id=None if reporter is None or pd.isna(reporter) else str(reporter),
                channel="demo",
            )
        )
    return requests


def seed(settings: Settings, requests: list[TriageRequest]) -> int:
    """Triage `requests` into the store named by `settings` if it has no prediction yet; how many were.

    The services are the server's own (`serving.services.open_services`: the store with its timeouts, the
    spool-backed writer, the hot-issue detector, the model), opened only once the store is known to be
    empty: a store in use is left alone without loading a model or claiming its hot-issue state."""
    with open_store(settings) as store:
        if store.count_predictions():
            return 0
    services = open_services(settings)
    try:
        model = services.model_state.model
        if model is None:
            raise RuntimeError(f"cannot seed the demo cases: {services.model_state.error}")
        for start in range(0, len(requests), BATCH):
            triage_cases(model, requests[start : start + BATCH], writer=services.writer, hotspots=services.hotspots)
        return len(requests)
    finally:
        services.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEMO_DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the newest N cases")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        requests = demo_requests(args.data, args.limit)
        # The seeding process is not the server: nothing of it belongs in the server's /metrics.
        stored = seed(Settings(metrics_enabled=False), requests)
    except (DataError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if stored:
        print(f"Seeded the audit store with {stored} demo cases (the reviewer queue and the dashboard show them).")
    else:
        print("The audit store already holds predictions: no demo cases added.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
