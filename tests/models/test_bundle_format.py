"""Bundles say which layout they are; older layouts are brought up to date in one place, newer ones refused."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from models.bundle import BUNDLE_FORMAT, BundleFormatError, TriageBundle
from models.risk import RiskModel, TextScorer
from models.taxonomy_guard import TaxonomyGuard, max_class_score


def _round_trip(bundle: TriageBundle, change: dict | None = None, drop: tuple[str, ...] = ()) -> TriageBundle:
    """Unpickle ``bundle`` as if an older (or newer) version had written it."""
    state = {k: v for k, v in bundle.__dict__.items() if k not in drop and not k.startswith("_")}
    state.update(change or {})
    old = object.__new__(TriageBundle)
    old.__dict__.update(state)
    data = pickle.dumps(old)
    return pickle.loads(data)


def test_a_new_bundle_records_its_format(demo_bundle: TriageBundle) -> None:
    assert demo_bundle.format == BUNDLE_FORMAT == 4
    assert pickle.loads(pickle.dumps(demo_bundle)).format == BUNDLE_FORMAT


def test_a_format_1_bundle_without_risk_or_guard_loads_and_routes(demo_bundle: TriageBundle) -> None:
    old = _round_trip(demo_bundle, drop=("format", "risk", "taxonomy_guard"))
    assert old.format == BUNDLE_FORMAT and old.risk is None and old.taxonomy_guard is None
    assert old.route_one("路灯坏了", "小区门口的路灯不亮") == demo_bundle.route_one("路灯坏了", "小区门口的路灯不亮")
    (assessed,) = old.assess([("路灯坏了", "")])
    assert assessed.risk is None


def test_a_format_2_bundle_without_a_reference_profile_loads_and_routes(demo_bundle: TriageBundle) -> None:
    old = _round_trip(demo_bundle, change={"format": 2}, drop=("reference",))
    assert old.format == BUNDLE_FORMAT and old.reference is None
    assert old.route_one("路灯坏了", "小区门口的路灯不亮") == demo_bundle.route_one("路灯坏了", "小区门口的路灯不亮")


def test_a_format_3_bundle_whose_guard_flags_on_the_raw_score_alone_still_does(
    demo_bundle: TriageBundle, demo_cases: pd.DataFrame
) -> None:
    cases = demo_cases[["title", "body"]].head(60)
    raw = max_class_score(demo_bundle.router[-1], demo_bundle.router[:-1].transform(cases))
    guard = object.__new__(TaxonomyGuard)  # pickled before routed thresholds existed
    guard.__dict__.update({"threshold": float(np.median(raw)), "flag_rate": 0.5})
    old = _round_trip(demo_bundle, change={"format": 3, "taxonomy_guard": guard})
    assert old.format == BUNDLE_FORMAT and old.taxonomy_guard.routed_threshold is None
    routes = old.route(cases)
    np.testing.assert_array_equal([r.out_of_taxonomy for r in routes], raw < np.median(raw))  # confident or not
    assert all(r.needs_review for r in routes if r.out_of_taxonomy)


@pytest.mark.parametrize("version", [5, 99, "2"])
def test_a_bundle_of_a_format_this_code_does_not_know_is_refused_with_what_to_do(
    demo_bundle: TriageBundle, version: object
) -> None:
    with pytest.raises(BundleFormatError, match=r"bundle format .* upgrade the service"):
        _round_trip(demo_bundle, change={"format": version})


def test_a_text_scorer_pickled_under_its_old_module_name_still_loads(demo_cases: pd.DataFrame) -> None:
    from models.risk.features import _doc
    from models.risk.params import LEVEL_ORDER

    docs = [_doc(f"{t}。{b}") for t, b in zip(demo_cases["title"][:200], demo_cases["body"][:200], strict=True)]
    levels = np.array([2 - LEVEL_ORDER[v] for v in demo_cases["risk_level"][:200]])
    scorer = TextScorer().fit(docs, levels)
    data = pickle.dumps(scorer, protocol=2)  # protocol 2 names the class by module and name in the stream
    old = data.replace(b"models.risk.text_score", b"models.risk_text")
    assert old != data
    loaded = pickle.loads(old)
    assert isinstance(loaded, TextScorer)
    np.testing.assert_array_equal(loaded.predict_proba_docs(docs[:5]), scorer.predict_proba_docs(docs[:5]))


def test_a_risk_model_from_before_its_newer_attributes_loads_as_it_behaved(demo_bundle_with_risk: TriageBundle) -> None:
    risk = demo_bundle_with_risk.risk
    state = risk.__getstate__()
    for name in ("random_state", "text_scorer_", "text_criterion_features_"):
        state.pop(name, None)
    params = state["params"] if state["params"] is not None else risk.resolved_params
    legacy = params.model_copy()
    del legacy.__dict__["red_cue_floor"]  # params pickled before the safety floor existed
    state["params"] = legacy
    old = object.__new__(RiskModel)
    old.__setstate__(state)
    assert old.random_state == risk.seed_ and old.text_scorer_ is None and old.text_criterion_features_ == []
    assert old.resolved_params.red_cue_floor is False
