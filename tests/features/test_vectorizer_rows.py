"""`CaseVectorizer.transform` computes its rows from the fitted vocabularies: they must equal sklearn's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from features.prepared import prepare_all
from features.text import case_text, case_tokens, mask_personal_data, normalise, tokenise
from features.tfidf_rows import FittedTfidf, term_counts
from features.vectorizer import TOKEN_SEPARATOR, CaseVectorizer, FeatureParams, as_pairs, split_tokens


def sklearn_reference(vec: CaseVectorizer, cases: pd.DataFrame) -> sp.csr_matrix:
    """The blocks as sklearn's own `TfidfVectorizer.transform` weighs them, from the documents the
    vectorizer built before it read prepared cases."""
    chars, words, titles = [], [], []
    for title, body in as_pairs(cases):
        if vec.body_max_chars is not None:
            body = normalise(body)[: vec.body_max_chars]
        text = case_text(title, body)
        words.append(TOKEN_SEPARATOR.join(case_tokens(title, body)))
        clean_title = mask_personal_data(normalise(title))
        chars.append(text if vec.char_source == "text" else (clean_title or text))
        titles.append(TOKEN_SEPARATOR.join(tokenise(clean_title)))
    blocks = [vec.word_vectorizer_.transform(words)]
    if vec.title_vectorizer_ is not None:
        blocks.append(vec.title_vectorizer_.transform(titles) * vec.title_weight)
    if vec.char_vectorizer_ is not None:
        blocks.append(vec.char_vectorizer_.transform(chars) * vec.char_weight)
    return sp.hstack(blocks, format="csr")


@pytest.mark.parametrize(
    "params",
    [
        {},  # the shipped defaults
        {"title_weight": 1.0, "char_source": "text", "char_ngram_range": (2, 4)},
        {"body_max_chars": 40, "word_ngram_range": (1, 3), "sublinear_tf": False},
        {"char_weight": 0.0},
    ],
    ids=["shipped", "title-and-text-chars", "cut-bodies", "words-only"],
)
def test_rows_equal_sklearns_transform_on_every_demo_case(demo_cases: pd.DataFrame, params: dict) -> None:
    cases = demo_cases[["title", "body"]]
    train, rest = cases.iloc[:500], cases.iloc[500:].reset_index(drop=True)
    vec = CaseVectorizer(**params).fit(train)
    ours, theirs = vec.transform(rest), sklearn_reference(vec, rest)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    # The same terms and the same arithmetic (sklearn's own l2 normalisation): the same numbers, bit for bit.
    np.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    assert (ours.toarray() != 0).sum() == (theirs.toarray() != 0).sum()


@pytest.mark.parametrize("params", [{}, {"char_weight": 0.0}, {"title_weight": 0.0}], ids=["shipped", "no-chars",
                                                                                        "no-title"])
def test_one_case_gets_the_batch_row_bit_for_bit(demo_cases: pd.DataFrame, params: dict) -> None:
    """A request's single case goes through its own path (no matrix per block): the same row a batch gives."""
    cases = demo_cases[["title", "body"]]
    vec = CaseVectorizer(**params).fit(cases.iloc[:500])
    rest = [*cases.iloc[500:].itertuples(index=False, name=None), ("", ""), ("！！！", "。。。")]
    batch = vec.transform(rest)
    for i, case in enumerate(rest):
        one = vec.transform([case])
        assert one.shape == (1, batch.shape[1]) and one.dtype == batch.dtype
        np.testing.assert_array_equal(one.indices, batch[i].indices)
        np.testing.assert_array_equal(one.data, batch[i].data)


def test_the_default_vectorizer_is_the_shipped_recipe() -> None:
    from models.router import FeatureParams as ConfigFeatures
    from training.config import TrainConfig

    assert ConfigFeatures is FeatureParams
    assert CaseVectorizer().get_params() == TrainConfig().features.model_dump()


def test_prepared_cases_pairs_and_frames_give_the_same_rows(demo_cases: pd.DataFrame) -> None:
    cases = demo_cases[["title", "body"]].head(200)
    vec = CaseVectorizer().fit(cases)
    from_frame = vec.transform(cases)
    from_pairs = vec.transform(list(cases.itertuples(index=False, name=None)))
    from_prepared = vec.transform(prepare_all(cases.itertuples(index=False, name=None)))
    assert (from_frame != from_pairs).nnz == 0 and (from_frame != from_prepared).nnz == 0


def test_a_case_with_no_known_word_is_an_empty_row() -> None:
    cases = [("路灯不亮", "小区路灯坏了"), ("噪音扰民", "工地夜间施工")]
    vec = CaseVectorizer(char_weight=0.0, word_min_df=1).fit(cases)
    row = vec.transform([("", "")])
    assert row.shape == (1, vec.n_features_out_) and row.nnz == 0


def test_refitting_forgets_the_old_vocabulary(demo_cases: pd.DataFrame) -> None:
    vec = CaseVectorizer()
    first = vec.fit(demo_cases[["title", "body"]].head(100)).transform(demo_cases[["title", "body"]].head(5))
    second = vec.fit(demo_cases[["title", "body"]].tail(300)).transform(demo_cases[["title", "body"]].head(5))
    assert second.shape[1] == vec.n_features_out_ != first.shape[1]


_token = st.sampled_from(["路灯", "不亮", "噪音", "", "a", "施工", "夜间", "b"])


@settings(max_examples=150, deadline=None)
@given(
    docs=st.lists(st.lists(_token, max_size=8).map(" ".join), min_size=2, max_size=12),
    queries=st.lists(st.lists(_token, max_size=10).map(" ".join), min_size=1, max_size=6),
    ngrams=st.sampled_from([(1, 1), (1, 2)]),
    max_df=st.sampled_from([1.0, 0.5]),
    max_features=st.sampled_from([None, 5]),
)
def test_word_terms_by_number_equal_sklearns_analyzer(
    docs: list[str], queries: list[str], ngrams: tuple[int, int], max_df: float, max_features: int | None
) -> None:
    """Word uni- and bigrams looked up as word numbers give sklearn's rows, also where ``max_df`` or
    ``max_features`` dropped a word that a kept bigram holds, and for empty tokens (doubled spaces)."""
    vectorizer = TfidfVectorizer(tokenizer=split_tokens, token_pattern=None, lowercase=False, ngram_range=ngrams,
                                 max_df=max_df, max_features=max_features, sublinear_tf=True, dtype=np.float32)
    try:
        vectorizer.fit(docs)
    except ValueError:  # no term left after pruning
        return
    fitted = FittedTfidf.of(vectorizer, split_on_spaces=True)
    assert fitted.words is not None  # the fast path, not the analyzer
    ours, theirs = fitted.rows(queries), vectorizer.transform(queries)
    np.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    for i, query in enumerate(queries):
        cols, data = fitted.row(query)
        np.testing.assert_array_equal(cols, theirs[i].indices)
        np.testing.assert_array_equal(data, theirs[i].data)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 8)), max_size=60))))
def test_term_counts_equal_a_coo_sum_with_sorted_columns(case: tuple[int, list[tuple[int, int]]]) -> None:
    n_rows, pairs = case
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    cols = np.array([c for _, c in pairs], dtype=np.int64)
    counts = term_counts(rows, cols, (n_rows, 9), np.float64)
    expected = sp.coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n_rows, 9)).toarray()
    assert counts.has_sorted_indices
    assert np.array_equal(counts.toarray(), expected)
    assert counts.nnz == len(set(pairs))  # one stored entry per distinct pair
