"""`models.risk.contributions`: contributions computed before a case's bursts are known, then updated for the
trees that read them, equal a fresh `pred_contrib` at the new values."""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest

from models.risk.contributions import contributions, iterations_using, moved


@pytest.fixture(scope="module")
def booster() -> lightgbm.Booster:
    """Three classes, 30 iterations; column 3 (the "burst") is read by the last 10 only: the first 20 are
    trained while it is constant, the rest continue on data where it decides class 2 for some cases."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 5))
    X[:, 3] = 0.0
    y = (X[:, 0] > 0.4).astype(int) + (X[:, 1] > 1.2).astype(int)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "max_depth": 3, "verbose": -1,
              "min_data_in_leaf": 5, "seed": 1, "deterministic": True, "num_threads": 1}
    first = lightgbm.train(params, lightgbm.Dataset(X, y), num_boost_round=20, keep_training_booster=True)
    X[:60, 3] = rng.integers(1, 6, size=60)
    y[:60] = 2
    return lightgbm.train(params, lightgbm.Dataset(X, y), num_boost_round=10, init_model=first)


def test_the_iterations_found_are_those_whose_trees_split_on_the_column(booster: lightgbm.Booster) -> None:
    found = iterations_using(booster, [3])
    assert found and set(found) <= set(range(20, 30)), found
    per_tree = booster.trees_to_dataframe()
    splitting = per_tree[per_tree["split_feature"] == "Column_3"]["tree_index"].unique()
    assert set(found) == {int(t) // 3 for t in splitting}
    assert iterations_using(booster, []) == ()


def test_contributions_updated_for_new_values_equal_a_fresh_computation(booster: lightgbm.Booster) -> None:
    rng = np.random.default_rng(3)
    before = rng.normal(size=(40, 5))
    before[:, 3] = 0.0
    after = before.copy()
    after[::2, 3] = rng.integers(1, 6, size=20)  # every other case placed in a burst, the rest unchanged
    pre = contributions(booster, before, 3)
    updated = moved(booster, pre, before, after, [3], iterations_using(booster, [3]))
    fresh = contributions(booster, after, 3)
    assert updated.shape == fresh.shape == (40, 3, 6)
    np.testing.assert_allclose(updated, fresh, rtol=0, atol=1e-12)
    assert not np.array_equal(pre[::2], fresh[::2]), "the bursts must move the contributions of placed cases"
    assert np.array_equal(updated[1::2], pre[1::2])  # unchanged rows are left exactly as they were
    assert updated is not pre and np.array_equal(pre, contributions(booster, before, 3))  # the input is not changed


def test_nothing_to_update_returns_the_contributions_as_they_are(booster: lightgbm.Booster) -> None:
    X = np.zeros((3, 5))
    pre = contributions(booster, X, 3)
    assert moved(booster, pre, X, X.copy(), [3], iterations_using(booster, [3])) is pre
    assert contributions(booster, np.zeros((0, 5)), 3).shape == (0, 3, 6)
