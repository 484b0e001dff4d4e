"""The detector's stateless half (`case_terms`, computed anywhere, e.g. on a Dask worker) fed to `observe`
gives exactly what `observe` computes from the text itself: same assignments, same snapshot."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

from models.hotspots import HotspotConfig, HotspotDetector, case_terms
from training.hotspots_cli import events_from_frame
from training.loading import load_cases


def test_precomputed_terms_give_the_same_replay(demo_csv: Path) -> None:
    config = HotspotConfig()
    events = list(events_from_frame(load_cases([demo_csv], training=False).frame))
    whole, split = HotspotDetector(config), HotspotDetector(config)
    for event in events:
        # the terms travel pickled (as from a worker) and the event arrives without its text
        terms = pickle.loads(pickle.dumps(case_terms(event.title, event.body, config)))
        assert split.observe(replace(event, title="", body=""), terms) == whole.observe(event)
    assert split.snapshot() == whole.snapshot()
    assert sum(1 for a in whole.alerts if a.level == "red") >= 1  # the replay did find bursts


def test_terms_depend_on_the_config() -> None:
    title, body = "兰亭苑小区3栋燃气味", "兰亭苑小区3栋地下室燃气味很重，" * 40
    short = case_terms(title, body, HotspotConfig(body_max_chars=20))
    full = case_terms(title, body, HotspotConfig())
    assert sum(short.counts.values()) < sum(full.counts.values())
    assert full.place is not None and full.place[3] == "title"
