"""`TermIndex` counts a batch's terms with numbers instead of strings: the counts must be `text_grams`'.

The reference is the definition the scorer was fitted with: `text_grams` looked up in the vocabulary.
Every text here is made up or comes from the shipped demo data.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.risk_cues import LEVELS
from features.text import case_text
from models.risk.features import _doc
from models.risk.text_score import CHAR_MARK, CHAR_NGRAMS, DOC_SEPARATOR, TextScorer, text_doc, text_grams
from models.risk.text_terms import TermIndex


def reference_counts(vocabulary: dict[str, int], doc: str) -> dict[int, int]:
    counts = Counter(j for j in map(vocabulary.get, text_grams(doc)) if j is not None)
    return dict(counts)


def batch_counts(index: TermIndex, docs: list[str]) -> list[dict[int, int]]:
    matrix = index.counts(docs, DOC_SEPARATOR)
    return [
        dict(zip(matrix.indices[a:b].tolist(), matrix.data[a:b].astype(int).tolist(), strict=True))
        for a, b in zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)
    ]


@pytest.fixture(scope="module")
def demo_docs(demo_cases: pd.DataFrame) -> list[str]:
    return [_doc(case_text(t, b)) for t, b in zip(demo_cases["title"], demo_cases["body"], strict=True)]


@pytest.fixture(scope="module")
def scorer(demo_docs: list[str], demo_cases: pd.DataFrame) -> TextScorer:
    y = np.array([LEVELS.index(v) for v in demo_cases["risk_level"]])
    return TextScorer(4.0).fit(demo_docs, y)


# A vocabulary made by hand, so the edge cases below have grams to find: runs, punctuation, digits,
# a supplementary-plane letter (U+20000), words with their bigrams, and grams holding an emoji, which no
# run holds, so `text_grams` never makes them: the index must never count them either.
HAND_VOCABULARY = {
    term: j
    for j, term in enumerate(
        ["燃气", "泄漏", "燃气 泄漏", "快来", "快来 救命", "救命"]
        + [CHAR_MARK + g for g in ("燃气", "气泄", "泄漏", "燃气泄", "气泄漏", "快来", "11", "111", "路路",
                                    "路路路", "a😀", "😀b", "a\U00020000", "\U00020000b",
                                    "a\U00020000b", "ab", "1路", "救命")]
    )
}
HAND_INDEX = TermIndex(HAND_VOCABULARY, CHAR_MARK, CHAR_NGRAMS, 200)

_PIECES = st.sampled_from(["燃气", "泄漏", "快来", "救命", "路", "1", "a", "b", "😀", "\U00020000", "，", " ",
                           "\x00", "\x01", "\ud800", "_", "。", "１"])


def test_counts_equal_text_grams_on_every_demo_case(scorer: TextScorer, demo_docs: list[str]) -> None:
    got = batch_counts(scorer._term_index(), demo_docs)
    assert got == [reference_counts(scorer.vocabulary_, d) for d in demo_docs]
    assert sum(map(len, got)) > 10 * len(demo_docs)  # the demo's terms are found, not an empty match


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(_PIECES, max_size=6), st.lists(_PIECES, max_size=60).map("".join)),
                max_size=5))
def test_counts_equal_text_grams_on_generated_documents(cases: list[tuple[list[str], str]]) -> None:
    docs = [text_doc([t for t in tokens if t.strip() and DOC_SEPARATOR not in t], text) for tokens, text in cases]
    assert batch_counts(HAND_INDEX, docs) == [reference_counts(HAND_VOCABULARY, d) for d in docs]


def test_a_run_is_read_up_to_its_cut_and_nothing_matches_across_documents_or_sizes() -> None:
    long_run = "路" * 250 + "，路路"  # 199 + 198 grams inside the first 200 characters, then 1 + 0
    docs = [text_doc([], long_run), text_doc([], "1"), text_doc([], "1路"), text_doc([], "\x0011")]
    got = batch_counts(HAND_INDEX, docs)
    assert got == [reference_counts(HAND_VOCABULARY, d) for d in docs]
    assert got[0] == {HAND_VOCABULARY[CHAR_MARK + "路路"]: 200, HAND_VOCABULARY[CHAR_MARK + "路路路"]: 198}
    assert got[1] == {}  # "1" then the next document's "1路": no gram across the join
    assert got[3] == {HAND_VOCABULARY[CHAR_MARK + "11"]: 1}  # "\0" + "11" is not the 3-gram "111"


def test_scores_equal_the_fitted_sklearn_vectorizer(scorer: TextScorer, demo_docs: list[str]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=text_grams, lowercase=False, sublinear_tf=True, vocabulary=scorer.vocabulary_)
    vec.idf_ = scorer.idf_
    expected = vec.transform(demo_docs)
    got = scorer.tfidf(demo_docs)
    assert abs(got - expected).max() < 1e-12


@pytest.mark.parametrize("stale", ["absent", "older layout"])
def test_a_scorer_without_a_current_index_builds_one_on_use(
    scorer: TextScorer, demo_docs: list[str], stale: str
) -> None:
    import pickle

    old = pickle.loads(pickle.dumps(scorer))
    if stale == "absent":
        del old.__dict__["_terms"]  # as pickled before the index existed
    else:
        old._terms.version = TermIndex.VERSION - 1
        del old._terms.chars  # an attribute this layout has and the older one did not
    np.testing.assert_array_equal(old.predict_proba_docs(demo_docs[:20]), scorer.predict_proba_docs(demo_docs[:20]))
    assert old._terms.version == TermIndex.VERSION


def test_sorted_search_and_hash_look_ups_find_the_same_columns(
    scorer: TextScorer, demo_docs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.risk import text_terms

    monkeypatch.setattr(text_terms._KeyTable, "HASH_FROM", 10**12)
    searched = batch_counts(scorer._term_index(), demo_docs)
    monkeypatch.setattr(text_terms._KeyTable, "HASH_FROM", 0)
    hashed = batch_counts(scorer._term_index(), demo_docs)
    assert searched == hashed == [reference_counts(scorer.vocabulary_, d) for d in demo_docs]


def test_character_grams_longer_than_three_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to 3"):
        TermIndex({}, CHAR_MARK, (2, 4), 200)
