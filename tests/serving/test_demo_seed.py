"""`make run` seeds an empty audit store with demo cases through the service's own triage path, once."""

from __future__ import annotations

from pathlib import Path

from command.demo_seed import demo_requests, seed
from serving.settings import Settings
from store import Store


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
