"""`models.risk.text_score`: the text model's terms, its criterion head and the evidence phrases it quotes.
Every text here is made up or comes from the shipped demo data."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from features.risk_cues import LEVELS
from features.text import case_text
from models.risk import criterion_column
from models.risk.features import _doc
from models.risk.text_score import CHAR_MARK, TextScorer, phrase_of, text_doc, text_grams, text_oof


def test_terms_are_word_ngrams_then_character_ngrams_within_runs() -> None:
    grams = text_grams(text_doc(["燃气", "泄漏"], "燃气泄漏,快来"))
    assert grams[:3] == ["燃气", "泄漏", "燃气 泄漏"]
    chars = [g for g in grams if g.startswith(CHAR_MARK)]
    assert f"{CHAR_MARK}燃气" in chars and f"{CHAR_MARK}气泄漏" in chars and f"{CHAR_MARK}快来" in chars
    assert not any("," in g for g in chars)  # never across punctuation
    assert phrase_of("燃气 泄漏") == "燃气泄漏" and phrase_of(f"{CHAR_MARK}气泄") == "气泄"


def test_a_long_run_of_one_character_costs_a_bounded_number_of_terms() -> None:
    started = time.perf_counter()
    grams = text_grams(text_doc([], "1" * 200_000 + "," + "路" * 100_000))
    assert len(grams) <= 2 * (2 * 200)  # each run read up to its first 200 characters, 2- and 3-grams
    assert time.perf_counter() - started < 1.0


@pytest.fixture(scope="module")
def scorer_and_docs(demo_cases: pd.DataFrame) -> tuple[TextScorer, list[str], np.ndarray, list[str | None]]:
    docs = [_doc(case_text(t, b)) for t, b in zip(demo_cases["title"], demo_cases["body"], strict=True)]
    y = np.array([LEVELS.index(v) for v in demo_cases["risk_level"]])
    criteria = criterion_column(demo_cases)
    return TextScorer(4.0).fit(docs, y, criteria=criteria), docs, y, criteria


def test_the_criterion_head_names_a_criterion_of_the_asked_level_with_phrases_from_the_text(
    scorer_and_docs: tuple[TextScorer, list[str], np.ndarray, list[str | None]],
) -> None:
    scorer, _, _, criteria = scorer_and_docs
    assert set(scorer.criterion_classes_) == {c for c in criteria if c}
    text = "小区地下室燃气泄漏，味道很重，物业不管，随时可能爆炸"
    doc = _doc(text)
    red = scorer.criterion_evidence(doc, "red")
    assert red is not None and red.criterion.startswith("red-") and 0 < red.probability < 1
    assert red.phrases and all(p.replace(" ", "") for p in red.phrases)
    words_and_text = doc.replace(" ", "")
    assert all(p in words_and_text for p in red.phrases)
    assert scorer.criterion_evidence(doc, "yellow").criterion.startswith("yellow-")
    assert scorer.criterion_evidence(doc, "green") is None


def test_criterion_probabilities_follow_the_head_and_are_zero_for_an_unseen_criterion(
    scorer_and_docs: tuple[TextScorer, list[str], np.ndarray, list[str | None]],
) -> None:
    scorer, docs, _, _ = scorer_and_docs
    levels, proba = scorer.score_docs(docs[:5], ["red-1", "red-9"])
    assert proba.shape == (5, 2) and (proba[:, 1] == 0).all() and ((proba[:, 0] > 0) & (proba[:, 0] < 1)).all()
    np.testing.assert_array_equal(levels, scorer.predict_proba_docs(docs[:5]))  # one pass gives both


def test_evidence_from_a_batchs_kept_terms_equals_evidence_read_from_the_document_alone(
    scorer_and_docs: tuple[TextScorer, list[str], np.ndarray, list[str | None]],
) -> None:
    scorer, docs, _, _ = scorer_and_docs
    batch = docs[:40]
    levels, named, terms = scorer.score_and_terms(batch, ["red-1"])
    scored_levels, scored_named = scorer.score_docs(batch, ["red-1"])
    np.testing.assert_array_equal(levels, scored_levels)
    np.testing.assert_array_equal(named, scored_named)
    assert len(terms) == len(batch)
    compared = 0
    for doc, kept in zip(batch, terms, strict=True):
        for level in ("red", "yellow"):
            alone = scorer.criterion_evidence(doc, level, 6)
            assert scorer.criterion_evidence(doc, level, 6, kept) == alone
            compared += alone is not None and bool(alone.phrases)
    assert compared >= 40  # the comparison saw real phrases, not only empty evidence

def test_out_of_fold_scores_never_come_from_a_scorer_that_saw_the_row(
    scorer_and_docs: tuple[TextScorer, list[str], np.ndarray, list[str | None]],
) -> None:
    _, docs, y, criteria = scorer_and_docs
    w = np.ones(len(y))
    train_mask = np.arange(len(y)) % 3 != 0
    oof, oof_c, full = text_oof(docs, y, w, None, 3, C=4.0, folds=3, train_mask=train_mask, criteria=criteria,
                                criterion_features=["red-1"])
    assert oof.shape == (len(y), 3) and oof_c.shape == (len(y), 1)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)
    # Rows the scorer never trained on get the full scorer's probabilities; trained rows get others.
    others = np.flatnonzero(~train_mask)
    np.testing.assert_allclose(oof[others], full.predict_proba_docs([docs[i] for i in others]))
    trained = np.flatnonzero(train_mask)
    assert not np.allclose(oof[trained], full.predict_proba_docs([docs[i] for i in trained]))


def test_fitting_the_folds_in_two_processes_gives_the_same_scores(
    scorer_and_docs: tuple[TextScorer, list[str], np.ndarray, list[str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import models.risk.text_score

    monkeypatch.setattr(models.risk.text_score, "PARALLEL_FROM", 0)
    _, docs, y, criteria = scorer_and_docs
    w = np.ones(len(y))
    one = text_oof(docs, y, w, None, 3, C=4.0, folds=3, criteria=criteria, criterion_features=["red-1"])
    two = text_oof(docs, y, w, None, 3, C=4.0, folds=3, criteria=criteria, criterion_features=["red-1"], n_jobs=2)
    # Equal up to the order of floating-point sums (BLAS threads differ between processes).
    np.testing.assert_allclose(one[0], two[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one[1], two[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one[2].coef_, two[2].coef_, rtol=1e-9, atol=1e-12)


def test_a_pickled_scorer_leaves_its_vocabulary_out_and_rebuilds_the_same_one_when_asked(
    scorer_and_docs: tuple[TextScorer, list[str], np.ndarray, list[str | None]],
) -> None:
    import pickle

    scorer, docs, _, _ = scorer_and_docs
    fitted = dict(scorer.vocabulary_)
    loaded = pickle.loads(pickle.dumps(scorer))
    assert "vocabulary_" not in loaded.__dict__  # not pickled: scoring never reads it
    np.testing.assert_array_equal(loaded.score_docs(docs)[0], scorer.score_docs(docs)[0])
    assert "vocabulary_" not in loaded.__dict__
    assert loaded.vocabulary_ == fitted  # rebuilt from terms_, term for term
    assert "vocabulary_" in loaded.__dict__  # once
    with pytest.raises(AttributeError, match="no attribute 'nothing_'"):
        _ = loaded.nothing_
    with pytest.raises(AttributeError):
        _ = TextScorer().vocabulary_  # unfitted: nothing to rebuild from


def test_a_pickled_scorer_keeps_its_terms_joined_until_a_reason_needs_them(
    scorer_and_docs: tuple[TextScorer, list[str], np.ndarray, list[str | None]],
) -> None:
    import copy
    import pickle

    scorer, docs, _, _ = scorer_and_docs
    loaded = pickle.loads(pickle.dumps(scorer))
    assert "terms_" not in loaded.__dict__  # one joined string, not an array of strings, was unpickled
    np.testing.assert_array_equal(loaded.score_docs(docs)[0], scorer.score_docs(docs)[0])
    assert "terms_" not in loaded.__dict__  # scoring never split it
    again = pickle.loads(pickle.dumps(loaded))  # pickled again before anyone asked: still whole
    doc = _doc("小区地下室燃气泄漏，味道很重，物业不管，随时可能爆炸")
    assert loaded.criterion_evidence(doc, "red") == scorer.criterion_evidence(doc, "red")
    assert list(loaded.terms_) == list(scorer.terms_) == list(again.terms_)
    assert again.vocabulary_ == scorer.vocabulary_
    # A term holding the separator (none does today) keeps the old array form, term for term.
    odd = copy.deepcopy(scorer)
    odd.terms_ = odd.terms_.copy()
    odd.terms_[0] = "a\x00b"
    kept = pickle.loads(pickle.dumps(odd))
    assert "terms_" in kept.__dict__ and kept.terms_[0] == "a\x00b"
