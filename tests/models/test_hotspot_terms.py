"""The detector's stateless half (`case_terms`, computed anywhere, e.g. on a Dask worker) fed to `observe`
gives exactly what `observe` computes from the text itself: same assignments, same snapshot."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from features import tokenizer
from models.hotspots import CaseTerms, HotspotConfig, HotspotDetector, case_terms, terms_key
from store.jsonable import decode, encode
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


def test_terms_through_the_feeds_json_give_the_same_replay(demo_csv: Path) -> None:
    """What another replica reads back from the feed's JSON column replays exactly like the text."""
    config = HotspotConfig()
    key = terms_key(config)
    events = list(events_from_frame(load_cases([demo_csv], training=False).frame))
    whole, stored = HotspotDetector(config), HotspotDetector(config)
    for event in events:
        terms = case_terms(event.title, event.body, config)
        read = CaseTerms.from_json(decode(encode(terms.to_json(key))), key)
        assert read is not None and list(read.counts) == list(terms.counts) and read.place == terms.place
        assert stored.observe(replace(event, title="", body=""), read) == whole.observe(event)
    assert stored.snapshot() == whole.snapshot()


def test_terms_made_under_other_settings_are_not_reused() -> None:
    terms = case_terms("幸福小区电梯坏了", "3号楼电梯停了一周", HotspotConfig())
    document = terms.to_json(terms_key(HotspotConfig()))
    assert CaseTerms.from_json(document, terms_key(HotspotConfig())) == terms
    assert CaseTerms.from_json(document, terms_key(HotspotConfig(title_weight=2.0))) is None
    assert CaseTerms.from_json(document, terms_key(HotspotConfig(body_max_chars=100))) is None
    assert terms_key(HotspotConfig(similarity_threshold=0.5)) == terms_key(HotspotConfig())  # not a terms setting
    for broken in (None, [], {"key": document["key"]}, {**document, "counts": [["a"]]},
                   {**document, "place": ["only a name"]}, {**document, "counts": [["a", "many"]]}):
        assert CaseTerms.from_json(broken, document["key"]) is None


@pytest.mark.parametrize("other", [name for name in tokenizer.NAMES if name != tokenizer.active()])
def test_terms_of_another_word_segmenter_are_not_reused(other: str) -> None:
    before = tokenizer.active()
    key = terms_key(HotspotConfig())
    tokenizer.use(other)
    try:
        assert terms_key(HotspotConfig()) != key
    finally:
        tokenizer.use(before)


def test_terms_depend_on_the_config() -> None:
    title, body = "兰亭苑小区3栋燃气味", "兰亭苑小区3栋地下室燃气味很重，" * 40
    short = case_terms(title, body, HotspotConfig(body_max_chars=20))
    full = case_terms(title, body, HotspotConfig())
    assert sum(short.counts.values()) < sum(full.counts.values())
    assert full.place is not None and full.place[3] == "title"


def test_terms_of_other_normalisation_rules_are_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    from models import hotspots

    key = terms_key(HotspotConfig())
    monkeypatch.setattr(hotspots, "_terms_keys", {})
    monkeypatch.setattr(hotspots, "TEXT_PIPELINE_VERSION", hotspots.TEXT_PIPELINE_VERSION + "-next")
    assert terms_key(HotspotConfig()) != key
