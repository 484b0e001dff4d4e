"""CompiledCalibratedLinear must give sklearn's numbers, and refuse what it cannot reproduce."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from models.bundle import TriageBundle
from models.fast_linear import CompiledCalibratedLinear


def blobs(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=240, n_features=12, n_informative=6, n_classes=n_classes, random_state=0
    )
    return X, np.array([f"dept-{v}" for v in y], dtype=object)


def calibrated(base, method: str = "sigmoid", n_classes: int = 4) -> tuple[CalibratedClassifierCV, np.ndarray]:
    X, y = blobs(n_classes)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    return CalibratedClassifierCV(base, method=method, cv=cv).fit(X, y), X


def test_compiled_scorer_matches_sklearn_on_the_demo_router(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, test = demo_split
    features = demo_bundle.router[:-1].transform(test[["title", "body"]])
    compiled = CompiledCalibratedLinear(demo_bundle.router[-1])
    expected = demo_bundle.router.predict_proba(test[["title", "body"]])
    got = compiled.predict_proba(features)
    assert got.shape == (len(test), len(demo_bundle.classes))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)


def test_bundle_predict_proba_equals_router_predict_proba(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, test = demo_split
    assert demo_bundle._compiled() is not None  # the fast path is the one under test
    expected = demo_bundle.router.predict_proba(test[["title", "body"]])
    np.testing.assert_allclose(demo_bundle.predict_proba(test[["title", "body"]]), expected, rtol=0, atol=1e-12)
    # One case at a time (the serving path) gives the same numbers as the batch.
    for i in range(5):
        one = demo_bundle.predict_proba([(test["title"].iloc[i], test["body"].iloc[i])])
        np.testing.assert_allclose(one[0], expected[i], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "base", [LinearSVC(C=0.5, random_state=0), LogisticRegression(max_iter=500, random_state=0)],
    ids=["linear_svc", "logistic_regression"],
)
def test_compiled_scorer_matches_sklearn_for_both_linear_kinds(base) -> None:
    model, X = calibrated(base)
    expected = model.predict_proba(X)
    np.testing.assert_allclose(CompiledCalibratedLinear(model).predict_proba(X), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        CompiledCalibratedLinear(model).predict_proba(sp.csr_matrix(X)), expected, rtol=0, atol=1e-12
    )


def test_compiled_scorer_refuses_isotonic_calibration() -> None:
    model, _ = calibrated(LinearSVC(random_state=0), method="isotonic")
    with pytest.raises(ValueError, match="sigmoid calibration"):
        CompiledCalibratedLinear(model)


def test_compiled_scorer_refuses_a_non_linear_estimator() -> None:
    model, _ = calibrated(DecisionTreeClassifier(max_depth=3, random_state=0))
    with pytest.raises(ValueError, match="linear estimators"):
        CompiledCalibratedLinear(model)


def test_compiled_scorer_refuses_binary_models() -> None:
    model, _ = calibrated(LinearSVC(random_state=0), n_classes=2)
    with pytest.raises(ValueError, match="multiclass"):
        CompiledCalibratedLinear(model)


def test_bundle_falls_back_to_sklearn_when_compiled_scoring_is_unavailable(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, test = demo_split
    copy = TriageBundle(demo_bundle.router, demo_bundle.thresholds, demo_bundle.target_precision)
    copy.__dict__["_compiled_cache"] = None  # as if the classifier could not be compiled
    np.testing.assert_allclose(
        copy.predict_proba(test[["title", "body"]].head(10)),
        demo_bundle.router.predict_proba(test[["title", "body"]].head(10)),
        rtol=0, atol=1e-12,
    )
