"""The taxonomy guard spends its flag budget where it changes the outcome (issue 14, item 7).

Most in-taxonomy cases with a low raw score are below their department's confidence threshold too and go
to review anyway; a guard chosen on the raw score alone flagged them and let the unseen department's
confident cases through. Trained knowing which cases the thresholds let through, the guard keeps a tenth of
its budget for the lowest scores and spends the rest on those cases. Guards trained before (no
``routed_threshold``) load and flag as they did.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from models.bundle import TriageBundle
from models.taxonomy_guard import CLEAR_SHARE, TaxonomyGuard, let_through


@pytest.fixture
def calibration() -> tuple[np.ndarray, np.ndarray]:
    """In-taxonomy scores where the low ones are mostly below the confidence thresholds (as measured)."""
    rng = np.random.default_rng(0)
    scores = rng.normal(0.0, 1.0, 4000)
    routed = rng.random(4000) < 1 / (1 + np.exp(-3 * scores))  # high raw score: usually confident
    return scores, routed


def test_the_budget_is_kept_and_spent_on_cases_the_thresholds_let_through(calibration) -> None:
    scores, routed = calibration
    old = TaxonomyGuard.from_scores(scores, 0.05)
    new = TaxonomyGuard.from_scores(scores, 0.05, routed=routed)
    flagged_old, flagged_new = old.flags(scores), new.flags(scores, routed)
    assert flagged_old.mean() == pytest.approx(0.05, abs=1e-3)
    assert flagged_new.mean() == pytest.approx(0.05, abs=1e-3)
    # The reviews each guard adds: flagged cases the thresholds would have routed.
    assert (flagged_new & routed).mean() > 0.04 > 3 * (flagged_old & routed).mean()
    # A tenth of the budget flags the lowest scores whatever the confidence.
    assert (scores < new.threshold).mean() == pytest.approx(CLEAR_SHARE * 0.05, abs=1e-3)
    assert new.threshold < old.threshold < new.routed_threshold
    assert new.flags(np.array([new.threshold - 1]), np.array([False])).all()
    assert not new.flags(np.array([new.routed_threshold - 1e-6]), np.array([False])).any()
    assert new.flags(np.array([new.routed_threshold - 1e-6]), np.array([True])).all()


def test_a_guard_for_routed_cases_refuses_to_guess_which_they_are(calibration) -> None:
    scores, routed = calibration
    guard = TaxonomyGuard.from_scores(scores, 0.05, routed=routed)
    with pytest.raises(ValueError, match="department thresholds let through"):
        guard.flags(scores)
    assert guard.describe() == {"threshold": guard.threshold, "flag_rate": 0.05,
                                "routed_threshold": guard.routed_threshold}


def test_no_routed_case_or_no_budget_flags_nothing_extra(calibration) -> None:
    scores, _ = calibration
    none_routed = TaxonomyGuard.from_scores(scores, 0.05, routed=np.zeros(len(scores), dtype=bool))
    assert none_routed.flags(scores, np.zeros(len(scores), dtype=bool)).mean() == pytest.approx(0.005, abs=1e-3)
    off = TaxonomyGuard.from_scores(scores, 0.0, routed=np.ones(len(scores), dtype=bool))
    assert not off.flags(scores, np.ones(len(scores), dtype=bool)).any()


def test_a_guard_pickled_before_routed_thresholds_flags_as_it_did(calibration) -> None:
    scores, _ = calibration
    guard = TaxonomyGuard.from_scores(scores, 0.05)
    state = pickle.dumps(guard)
    old = object.__new__(TaxonomyGuard)
    old.__dict__.update({"threshold": guard.threshold, "flag_rate": guard.flag_rate})  # the old layout
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.routed_threshold is None and loaded == pickle.loads(state)
    np.testing.assert_array_equal(loaded.flags(scores), scores < guard.threshold)
    assert loaded.describe() == {"threshold": guard.threshold, "flag_rate": 0.05}


def test_let_through_is_the_routing_decision(demo_bundle: TriageBundle, demo_split) -> None:
    _, test = demo_split
    proba = demo_bundle.predict_proba(test[["title", "body"]])
    routes = demo_bundle.routes_from_proba(proba)
    np.testing.assert_array_equal(let_through(proba, demo_bundle._limits()), [not r.needs_review for r in routes])
    assert let_through(np.zeros((0, 3)), np.ones(3)).shape == (0,)
