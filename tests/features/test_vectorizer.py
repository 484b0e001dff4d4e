"""Tests for features.vectorizer.CaseVectorizer: the sklearn contract, input forms and persistence."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features.vectorizer import CaseVectorizer, as_pairs


@pytest.fixture(scope="module")
def small_cases(demo_cases: pd.DataFrame) -> pd.DataFrame:
    return demo_cases[["title", "body"]].head(120).reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(small_cases: pd.DataFrame) -> CaseVectorizer:
    return CaseVectorizer().fit(small_cases)


def same_matrix(a: sp.spmatrix, b: sp.spmatrix) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


# -- sklearn contract ------------------------------------------------------------------------------


def test_get_params_returns_the_constructor_arguments_unchanged() -> None:
    vec = CaseVectorizer(word_ngram_range=(1, 3), title_weight=0.5, char_weight=0, body_max_chars=200)
    params = vec.get_params()
    assert params["word_ngram_range"] == (1, 3)
    assert params["title_weight"] == 0.5
    assert params["char_weight"] == 0
    assert params["body_max_chars"] == 200
    assert params["char_min_df"] == 1  # the shipped default (FeatureParams) kept


def test_clone_round_trip_keeps_params_and_drops_fitted_state(fitted: CaseVectorizer) -> None:
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "word_vectorizer_")
    with pytest.raises(NotFittedError):
        copy.transform([("路灯坏了", "")])


def test_set_params_then_get_params_round_trip() -> None:
    vec = CaseVectorizer().set_params(char_ngram_range=(1, 3), word_min_df=1)
    assert vec.get_params()["char_ngram_range"] == (1, 3)
    assert vec.get_params()["word_min_df"] == 1


def test_init_only_stores_arguments_and_validation_happens_in_fit(small_cases: pd.DataFrame) -> None:
    vec = CaseVectorizer(title_weight=-1.0)  # no error yet: sklearn validates in fit
    assert vec.title_weight == -1.0
    with pytest.raises(ValueError, match="title_weight and char_weight must be >= 0"):
        vec.fit(small_cases)


def test_transform_before_fit_raises_not_fitted_error() -> None:
    with pytest.raises(NotFittedError):
        CaseVectorizer().transform([("路灯坏了", "兰亭苑小区东门外的路灯坏了")])


def test_fit_returns_self_and_sets_fitted_attributes(small_cases: pd.DataFrame) -> None:
    vec = CaseVectorizer()
    assert vec.fit(small_cases) is vec
    assert vec.n_features_out_ > 0
    assert vec.word_vectorizer_ is not None
    assert vec.title_vectorizer_ is None  # the shipped recipe has no title-word block (title_weight 0)
    assert vec.char_vectorizer_ is not None


def test_fit_transform_equals_fit_then_transform(small_cases: pd.DataFrame, fitted: CaseVectorizer) -> None:
    direct = CaseVectorizer().fit_transform(small_cases)
    assert direct.shape == (len(small_cases), fitted.n_features_out_)
    np.testing.assert_allclose(direct.toarray(), fitted.transform(small_cases).toarray(), rtol=0, atol=1e-6)


def test_fitting_on_zero_cases_is_an_error() -> None:
    with pytest.raises(ValueError, match="zero cases"):
        CaseVectorizer().fit([])


# -- input forms -----------------------------------------------------------------------------------


def test_dataframe_input_equals_list_of_pairs_input(small_cases: pd.DataFrame, fitted: CaseVectorizer) -> None:
    pairs = list(zip(small_cases["title"], small_cases["body"], strict=True))
    from_frame = fitted.transform(small_cases)
    from_pairs = fitted.transform(pairs)
    assert from_frame.shape == (len(small_cases), fitted.n_features_out_)
    assert from_frame.nnz > 0
    assert same_matrix(from_frame, from_pairs)


def test_missing_and_none_values_are_treated_as_empty_text(fitted: CaseVectorizer) -> None:
    frame = pd.DataFrame({"title": ["18路公交车班次太少", None], "body": [np.nan, "每晚十一点后还在打桩"]})
    pairs = [("18路公交车班次太少", ""), ("", "每晚十一点后还在打桩")]
    assert same_matrix(fitted.transform(frame), fitted.transform(pairs))
    assert as_pairs(frame) == pairs


@pytest.mark.parametrize("missing", ["title", "body"])
def test_dataframe_without_title_or_body_column_is_rejected_naming_it(
    fitted: CaseVectorizer, missing: str
) -> None:
    frame = pd.DataFrame({"title": ["路灯坏了"], "body": ["三周没人修"]}).drop(columns=[missing])
    with pytest.raises(ValueError, match=rf"missing column\(s\) \['{missing}'\]"):
        fitted.transform(frame)


def test_extra_columns_are_ignored(small_cases: pd.DataFrame, fitted: CaseVectorizer) -> None:
    wider = small_cases.assign(department="城乡建设", case_id=range(len(small_cases)))
    assert same_matrix(fitted.transform(wider), fitted.transform(small_cases))


def test_transform_depends_on_the_text(fitted: CaseVectorizer) -> None:
    a = fitted.transform([("小区物业乱收费", "物业公司又涨物业费")])
    b = fitted.transform([("公交车改线", "18路公交车取消了站点")])
    assert not same_matrix(a, b)


def test_personal_numbers_do_not_change_the_features(fitted: CaseVectorizer) -> None:
    a = fitted.transform([("噪音扰民", "请回电13912345678")])
    b = fitted.transform([("噪音扰民", "请回电18923307615")])
    assert same_matrix(a, b)


# -- blocks ----------------------------------------------------------------------------------------


def test_disabling_blocks_with_zero_weights_removes_their_features(small_cases: pd.DataFrame) -> None:
    full = CaseVectorizer(title_weight=1.0).fit(small_cases)
    no_char = CaseVectorizer(title_weight=1.0, char_weight=0).fit(small_cases)
    words_only = CaseVectorizer(char_weight=0, title_weight=0).fit(small_cases)

    n_words = len(words_only.word_vectorizer_.vocabulary_)
    n_titles = len(no_char.title_vectorizer_.vocabulary_)
    n_chars = len(full.char_vectorizer_.vocabulary_)
    assert words_only.n_features_out_ == n_words
    assert no_char.n_features_out_ == n_words + n_titles
    assert full.n_features_out_ == n_words + n_titles + n_chars
    assert n_titles > 0 and n_chars > 0
    assert no_char.char_vectorizer_ is None
    assert words_only.title_vectorizer_ is None
    assert words_only.transform(small_cases.head(3)).shape == (3, n_words)


def test_block_weight_scales_its_block(small_cases: pd.DataFrame) -> None:
    one = CaseVectorizer(title_weight=0, char_weight=1.0).fit(small_cases)
    two = CaseVectorizer(title_weight=0, char_weight=2.0).fit(small_cases)
    n_words = len(one.word_vectorizer_.vocabulary_)
    x1 = one.transform(small_cases.head(5)).toarray()
    x2 = two.transform(small_cases.head(5)).toarray()
    np.testing.assert_allclose(x2[:, :n_words], x1[:, :n_words], atol=1e-7)
    np.testing.assert_allclose(x2[:, n_words:], 2 * x1[:, n_words:], atol=1e-6)
    assert np.abs(x1[:, n_words:]).sum() > 0


# -- persistence -----------------------------------------------------------------------------------


def test_pickle_round_trip_gives_identical_transform(small_cases: pd.DataFrame, fitted: CaseVectorizer) -> None:
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.get_params() == fitted.get_params()
    assert restored.n_features_out_ == fitted.n_features_out_
    assert same_matrix(restored.transform(small_cases), fitted.transform(small_cases))
