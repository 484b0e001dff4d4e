"""`make run` seeds an empty audit store with demo cases through the service's own triage path, once."""

from __future__ import annotations

from pathlib import Path

from command.demo_seed import demo_requests, seed
from serving.settings import Settings
from store import Store
from tests.serving.test_review_api import risk_bundle_dir  # noqa: F401  # the fixture


def test_demo_cases_become_requests_in_time_order_with_their_zone() -> None:
    requests = demo_requests(limit=40)
    assert len(requests) == 40
    times = [r.created_at for r in requests]
    assert times == sorted(times) and all(t.utcoffset().total_seconds() == 8 * 3600 for t in times)
    assert len({r.case_id for r in requests}) == 40


def test_seeding_fills_an_empty_store_once(demo_bundle_dir: Path, tmp_path: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'seed.db'}")
    requests = demo_requests(limit=60)
    assert seed(settings, requests) == 60
    assert seed(settings, requests) == 0  # a store with predictions is left alone
    with Store.from_url(settings.database_url) as store:
        assert store.count_predictions() == 60
        queue = store.review_queue(limit=200)
        assert {item.case_id for item in queue} == {r.case_id for r in requests}
        assert store.latest_snapshot() is not None  # the detector's state was saved for the server


def test_seeded_cases_keep_their_text_as_written_like_api_cases(demo_bundle_dir: Path, tmp_path: Path) -> None:
    """Issue 14, item 12: the seed used to send the loader's normalised text (half-width punctuation)."""
    import pandas as pd

    from command.demo_seed import DEMO_DATA

    written = pd.read_csv(DEMO_DATA, dtype=str, keep_default_na=False).set_index("case_id")
    requests = demo_requests(limit=30)
    assert any("，" in r.body for r in requests)  # full-width punctuation as the file has it
    for r in requests:
        assert (r.title, r.body) == (written.at[r.case_id, "title"], written.at[r.case_id, "body"])
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'seed.db'}")
    seed(settings, requests)
    with Store.from_url(settings.database_url) as store:
        (version,) = store.case_versions(requests[0].case_id)
        assert (version.title, version.body) == (requests[0].title, requests[0].body)


def test_the_demo_seeds_warnings_in_every_state(risk_bundle_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """Issue 16: the warning pages have issued, acknowledged, resolved, withdrawn and overdue warnings to show."""
    from datetime import timedelta

    from models.warning_policy import load_warning_policy
    from store import WarningBook, WarningFilters
    from store.tables import utcnow

    settings = Settings(model_uri=str(risk_bundle_dir), database_url=f"sqlite:///{tmp_path / 'seed.db'}")
    assert seed(settings, demo_requests(limit=200)) == 200
    with Store.from_url(settings.database_url) as store:
        book = WarningBook(store.engine, load_warning_policy())
        summary = book.summary()
        assert all(summary.by_status[s] > 0 for s in ("issued", "acknowledged", "resolved", "withdrawn")), summary
        assert summary.overdue > 0 and summary.open > summary.overdue  # some open ones are still in time
        escalated, _ = book.list(WarningFilters(overdue=True), limit=500)
        assert escalated and all(w.escalation_level >= 1 for w in escalated)
        issued = [w.issued_at for w in book.list(WarningFilters(), limit=1000)[0]]
        assert utcnow() - min(issued) > timedelta(days=1) and max(issued) <= utcnow()  # spread, oldest first
        assert set(summary.by_level) <= {"red", "yellow"} and summary.by_district.get("unknown", 0) < summary.total
        for warning in book.list(WarningFilters(status="resolved"), limit=5)[0]:
            events = book.get(warning.id).events
            assert [e.kind for e in events][:3] == ["issued", "acknowledged", "resolved"]
            assert events[0].at <= events[1].at <= events[2].at <= utcnow()
