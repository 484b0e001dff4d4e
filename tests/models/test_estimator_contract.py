"""Every custom estimator keeps scikit-learn's contract, checked by one parametrised test per rule.

Parameters are stored unchanged by ``__init__`` (so `clone` and ``get_params`` work), ``random_state`` where
there is randomness, fitted state only in attributes ending in ``_``, `NotFittedError` before `fit`, and
a pickle round trip that scores the same. Text estimators say so in their tags.
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags

from features.risk_cues import RiskCueVectorizer
from features.vectorizer import CaseVectorizer
from models.hashed_router import CalibratedSGD, HashedCaseVectorizer
from models.risk import RiskModel, RiskParams, TextScorer
from models.risk.features import _doc
from models.risk.params import LEVEL_ORDER

FAST_RISK = RiskParams(n_estimators=20, text_folds=2, band_folds=2, text_jobs=1)


@dataclass(frozen=True)
class Case:
    """How to fit one estimator on demo data and what to compare after a round trip."""

    make: Callable[[], BaseEstimator]
    fit: Callable[[BaseEstimator, pd.DataFrame], BaseEstimator]
    output: Callable[[BaseEstimator, pd.DataFrame], Any]
    text_input: bool = True


def _docs(cases: pd.DataFrame) -> list[str]:
    from features.text import case_text

    return [_doc(case_text(t, b)) for t, b in zip(cases["title"], cases["body"], strict=True)]


def _levels(cases: pd.DataFrame) -> np.ndarray:
    return np.array([2 - LEVEL_ORDER[v] for v in cases["risk_level"]], dtype=np.int64)


def _hashed_counts(cases: pd.DataFrame) -> Any:
    return HashedCaseVectorizer(n_features=2**12).fit_transform(cases[["title", "body"]])


CASES: dict[str, Case] = {
    "CaseVectorizer": Case(
        CaseVectorizer,
        lambda e, c: e.fit(c[["title", "body"]]),
        lambda e, c: e.transform(c[["title", "body"]]).toarray(),
    ),
    "HashedCaseVectorizer": Case(
        lambda: HashedCaseVectorizer(n_features=2**12),
        lambda e, c: e.fit(c[["title", "body"]]),
        lambda e, c: e.transform(c[["title", "body"]]).toarray(),
    ),
    "RiskCueVectorizer": Case(
        RiskCueVectorizer, lambda e, c: e.fit(c[["title", "body"]]), lambda e, c: e.transform(c[["title", "body"]])
    ),
    "CalibratedSGD": Case(
        lambda: CalibratedSGD(epochs=2, calibration_folds=2, random_state=0),
        lambda e, c: e.fit(_hashed_counts(c), c["department"].to_numpy()),
        lambda e, c: e.predict_proba(_hashed_counts(c)),
        text_input=False,
    ),
    "TextScorer": Case(
        TextScorer, lambda e, c: e.fit(_docs(c), _levels(c)), lambda e, c: e.predict_proba_docs(_docs(c))
    ),
    "RiskModel": Case(
        lambda: RiskModel(FAST_RISK, random_state=7),
        lambda e, c: e.fit(c),
        lambda e, c: [r.to_dict() for r in e.predict(c)],
    ),
}


@pytest.fixture(scope="module")
def data(demo_cases: pd.DataFrame) -> pd.DataFrame:
    return demo_cases.head(300).reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(data: pd.DataFrame) -> dict[str, BaseEstimator]:
    return {name: case.fit(case.make(), data) for name, case in CASES.items()}


@pytest.mark.parametrize("name", CASES)
def test_init_stores_its_parameters_unchanged_so_clone_and_get_params_work(name: str) -> None:
    estimator = CASES[name].make()
    params = estimator.get_params(deep=False)
    signature = inspect.signature(type(estimator).__init__).parameters.values()
    named = {p.name for p in signature if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    assert set(params) == named
    copy = clone(estimator)
    assert type(copy) is type(estimator) and copy is not estimator
    assert copy.get_params(deep=False).keys() == params.keys()
    assert copy.set_params(**params).get_params(deep=False) == params


@pytest.mark.parametrize("name", CASES)
def test_random_state_is_a_parameter_where_the_fit_is_random(name: str) -> None:
    estimator = CASES[name].make()
    if name in ("CalibratedSGD", "RiskModel"):
        assert "random_state" in estimator.get_params()


@pytest.mark.parametrize("name", CASES)
def test_scoring_before_fit_raises_not_fitted(name: str, data: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError):
        CASES[name].output(CASES[name].make(), data.head(3))


@pytest.mark.parametrize("name", CASES)
def test_fitted_state_lives_in_trailing_underscore_attributes(name: str, data: pd.DataFrame) -> None:
    estimator = CASES[name].make()
    before = set(vars(estimator))
    CASES[name].fit(estimator, data)
    added = set(vars(estimator)) - before
    assert added, "fit sets fitted attributes"
    assert all(a.endswith("_") or a.startswith("_") for a in added), sorted(added)
    assert set(estimator.get_params(deep=False)) <= before


@pytest.mark.parametrize("name", CASES)
def test_a_fitted_estimator_clones_unfitted(name: str, fitted: dict[str, BaseEstimator], data: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError):
        CASES[name].output(clone(fitted[name]), data.head(3))


@pytest.mark.parametrize("name", CASES)
def test_pickle_round_trip_scores_the_same(name: str, fitted: dict[str, BaseEstimator], data: pd.DataFrame) -> None:
    sample = data.tail(40).reset_index(drop=True)
    before = CASES[name].output(fitted[name], sample)
    after = CASES[name].output(pickle.loads(pickle.dumps(fitted[name])), sample)
    if isinstance(before, np.ndarray):
        np.testing.assert_array_equal(before, after)
    else:
        assert before == after


@pytest.mark.parametrize("name", CASES)
def test_tags_say_whether_the_input_is_text(name: str) -> None:
    assert get_tags(CASES[name].make()).input_tags.string is CASES[name].text_input


@pytest.mark.parametrize("name", CASES)
def test_pickling_leaves_the_estimator_as_it_was(
    name: str, fitted: dict[str, BaseEstimator], data: pd.DataFrame
) -> None:
    """Caches built while scoring are left out of the pickle, not removed from the live estimator."""
    estimator = fitted[name]
    CASES[name].output(estimator, data.head(3))  # builds any scoring cache
    before = dict(vars(estimator))
    pickle.dumps(estimator)
    assert vars(estimator).keys() == before.keys()
