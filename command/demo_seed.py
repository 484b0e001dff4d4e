"""Fill an empty audit store with the demo cases, so a newcomer's `make run` has a queue to audit.

The cases go through the very path the API uses (`triage_cases`: router, hot-issue detector, risk model,
store, all opened by the server's own `serving.services.open_services`), in time order, so the review
queue, the case views, the hot-issue alerts and the dashboard all show real predictions of the served model.
A store that already holds predictions is left alone: the seed runs once, and never mixes demo cases into a
store in use.

Warnings (预警单) are issued by the same path. So that the warning pages have every state to show, the seed
spreads the warnings' issue times over the last three days (`DEMO_SPAN`, in case order) and plays the
departments and reviewers: most are acknowledged and many resolved within their deadlines, a few withdrawn,
some left open; the overdue sweep then raises the supervision notices of those left past a deadline. Only
the warnings' times are spread: the cases and predictions keep the time they were seeded at.

    python -m command.demo_seed [--data CSV] [--limit N]
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from serving.schemas import TriageRequest
from serving.services import open_services, open_store
from serving.settings import Settings
from serving.triage_service import triage_cases
from serving.warning_desk import WarningDesk
from store import WarningFilters
from store.tables import utcnow
from training.loading import DataError, load_cases

logger = logging.getLogger(__name__)

DEMO_DATA = Path(__file__).resolve().parent.parent / "training" / "demo_data" / "grievances.csv"
BATCH = 100
#: The warnings of the seeded cases are issued over this span before now, oldest case first.
DEMO_SPAN = timedelta(days=3)


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
        desk, now = services.warnings, utcnow()
        for start in range(0, len(requests), BATCH):
            batch = requests[start : start + BATCH]
            issued_at = now - DEMO_SPAN * ((len(requests) - start - len(batch)) / len(requests))
            triage_cases(model, batch, writer=services.writer, hotspots=services.hotspots)
            desk.clock = lambda at=issued_at: at
            while desk.issue_new():  # what the service's issuer does every half second
                pass
        desk.clock = utcnow
        play_warning_states(desk, now)
        return len(requests)
    finally:
        services.close()


def play_warning_states(desk: WarningDesk, now: datetime) -> dict[str, int]:
    """Act on the seeded warnings as departments and reviewers would, at plausible times before `now`, then
    sweep: issued, acknowledged, resolved, withdrawn and overdue (escalated) warnings all appear. Decided by
    each warning's id, so a seed is reproducible. Returns the count per status."""
    book = desk.book
    warnings, _ = book.list(WarningFilters(), limit=1_000_000, at=now)
    for warning in sorted(warnings, key=lambda w: w.id):
        turn = warning.id % 10
        deadline = warning.acknowledge_due or warning.issued_at
        answered = warning.issued_at + (deadline - warning.issued_at) / 2
        if turn == 9:
            book.withdraw(warning.id, "reviewer-demo", note="与已有工单重复，已并案处理",
                          at=min(now, warning.issued_at + timedelta(minutes=30)))
        elif turn <= 5 and answered < now:
            book.acknowledge(warning.id, f"{warning.department}-demo", note="已签收，安排人员核查", at=answered)
            done = warning.issued_at + ((warning.resolve_due or deadline) - warning.issued_at) * 0.8
            if turn <= 3 and done < now:
                book.resolve(warning.id, f"{warning.department}-demo", note="已现场处置并回访，群众表示认可", at=done)
        # turns 6-8 stay open: past a deadline they are overdue, and the sweep below escalates them.
    while book.sweep_overdue(at=now):  # 500 a round
        pass
    return book.summary(at=now).by_status


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
