"""The risk model's text model: what a case's words and characters say about its level and rubric criterion.

The cue lexicon knows phrases; annotated cases show situations the lexicon never listed ("开发商卷走首付",
"水里有虫", "扬言报复"). `TextScorer` learns them from real risk labels: TF-IDF over jieba word 1-2 grams
and character 2-3 grams of the normalised text (characters catch words jieba splits differently and
variants the user dictionary lacks), with two multinomial logistic-regression heads:

- **level** (red / yellow / green): stacked into the LightGBM risk model as the ``text_p:*`` features;
- **criterion** (red-1 ... yellow-4, green), trained on the rows whose annotation names one: says which
  rubric criterion a red or yellow case meets, and which of its own phrases show it (`criterion_evidence`),
  so a reviewer's first reason is a rubric criterion with words from the case, not a feature name.

Fitting uses scikit-learn; scoring is a sparse product of the documents' TF-IDF rows, built straight from the
fitted vocabulary and IDF (`text_terms.TermIndex`: character grams as numbers, looked up for a whole batch
at once), with the coefficients: the same arithmetic without a Python string per character gram. Holds only dicts and
arrays, so it pickles; lbfgs is deterministic, so the same data and C give the same scorer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from features.risk_cues import CRITERIA, LEVELS
from features.tfidf_rows import tfidf_weights
from features.vectorizer import split_tokens
from models.risk.text_terms import TermIndex

__all__ = ["CriterionEvidence", "DocTerms", "TextScorer", "text_doc", "text_grams", "text_oof"]

#: Separates the space-joined words of a document from its characters (never in normalised text).
DOC_SEPARATOR = "\x1f"
#: Marks a character n-gram, so "安全" the word and "安全" the two characters are different terms.
CHAR_MARK = "\x1e"
CHAR_NGRAMS: tuple[int, ...] = (2, 3)
#: Runs of letters, digits and CJK characters: character n-grams never span punctuation or spaces.
_CHAR_RUN = re.compile(r"[^\W_]+")
#: Longest run read for character n-grams: a 20,000-digit "word" says nothing more after its start.
_MAX_RUN = 200
CRITERION_LABELS: tuple[str, ...] = (*CRITERIA, "green")
#: Fewest training rows for which `text_oof` fits in several processes: below, starting them costs more.
PARALLEL_FROM = 2000


def text_doc(tokens: Sequence[str], text: str) -> str:
    """One document for the text model: the case's jieba words and its normalised text."""
    return " ".join(tokens) + DOC_SEPARATOR + text


def text_grams(doc: str) -> list[str]:
    """The terms of a `text_doc`: word 1-2 grams, then character 2-3 grams of each run of the text.

    Module level so a fitted TfidfVectorizer with ``analyzer=text_grams`` pickles; linear in the text.
    """
    words, _, text = doc.partition(DOC_SEPARATOR)
    tokens = split_tokens(words)
    grams = tokens + [f"{a} {b}" for a, b in pairwise(tokens)]
    for match in _CHAR_RUN.finditer(text):
        run = match.group()[:_MAX_RUN]
        for n in CHAR_NGRAMS:
            grams.extend(CHAR_MARK + run[i:i + n] for i in range(len(run) - n + 1))
    return grams


def phrase_of(term: str) -> str:
    """A term as the words a reviewer sees: ``"燃气 泄漏"`` -> ``"燃气泄漏"``, a character n-gram unmarked."""
    return term.removeprefix(CHAR_MARK).replace(" ", "")


@dataclass(frozen=True)
class CriterionEvidence:
    """The rubric criterion a text most resembles among one level's criteria, and the terms that show it."""

    criterion: str
    probability: float
    #: Phrases of the case that pushed toward the criterion, strongest first (as written in the text).
    phrases: tuple[str, ...]


class DocTerms(NamedTuple):
    """One document's TF-IDF row: its term columns and their weights."""

    indices: np.ndarray
    weights: np.ndarray


def _softmax(raw: np.ndarray) -> np.ndarray:
    z = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


#: Where a pickled scorer keeps its terms: (how many, the terms joined by `_TERM_SEPARATOR`).
_TERMS_JOINED = "_terms_joined"
#: No term holds it (a term is a word, a word pair or a character gram of printed text); were one to, the
#: terms are pickled as an array, as before.
_TERM_SEPARATOR = "\x00"


class TextScorer(BaseEstimator):
    """TF-IDF (`text_grams`, min_df 2, sublinear tf, l2) with a level head and an optional criterion head,
    each a balanced multinomial logistic regression. See the module docstring. An sklearn estimator over
    documents (`text_doc`): `clone` works, scoring before `fit` raises `NotFittedError`."""

    def __init__(self, C: float = 4.0, criterion_C: float | None = None) -> None:
        self.C = C
        self.criterion_C = criterion_C

    def fit(
        self,
        docs: Sequence[str],
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        criteria: Sequence[str | None] | None = None,
    ) -> TextScorer:
        """``y``: level codes (index into `LEVELS`); ``criteria``: each row's rubric criterion or None."""
        y = np.asarray(y, dtype=np.int64)
        vectorizer = TfidfVectorizer(analyzer=text_grams, lowercase=False, min_df=2, sublinear_tf=True,
                                     dtype=np.float64)
        try:
            Xt = vectorizer.fit_transform(docs)
        except ValueError:  # no term in two documents (a tiny training set)
            vectorizer.set_params(min_df=1)
            Xt = vectorizer.fit_transform(docs)
        clf = LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000)
        clf.fit(Xt, y, sample_weight=sample_weight)
        if list(clf.classes_) != list(range(len(LEVELS))):
            raise ValueError("the text score needs training examples of every level")
        self.__dict__.pop(_TERMS_JOINED, None)  # a loaded scorer fitted again: its old terms go
        self.vocabulary_: dict[str, int] = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
        self.terms_ = np.empty(len(self.vocabulary_), dtype=object)
        for term, j in self.vocabulary_.items():
            self.terms_[j] = term
        self.idf_ = np.asarray(vectorizer.idf_, dtype=np.float64)
        self.coef_ = np.ascontiguousarray(clf.coef_.T, dtype=np.float64)  # (n_terms, 3)
        self.intercept_ = np.asarray(clf.intercept_, dtype=np.float64)
        self._fit_criteria(Xt, criteria, sample_weight)
        self._terms = TermIndex(self.vocabulary_, CHAR_MARK, CHAR_NGRAMS, _MAX_RUN)
        return self

    def _fit_criteria(self, Xt: Any, criteria: Sequence[str | None] | None, w: np.ndarray | None) -> None:
        self.criterion_classes_: list[str] = []
        self.criterion_coef_: np.ndarray | None = None
        self.criterion_intercept_: np.ndarray | None = None
        if criteria is None:
            return
        known = np.array([c in CRITERION_LABELS for c in criteria], dtype=bool)
        present = sorted({c for c, k in zip(criteria, known, strict=True) if k}, key=CRITERION_LABELS.index)
        if len(present) < 2:
            return
        rows = np.flatnonzero(known)
        labels = np.array([present.index(criteria[i]) for i in rows])
        clf = LogisticRegression(C=self.criterion_C or self.C, class_weight="balanced", max_iter=3000)
        clf.fit(Xt[rows], labels, sample_weight=None if w is None else np.asarray(w)[rows])
        coef = clf.coef_ if len(present) > 2 else np.vstack([-clf.coef_, clf.coef_])
        intercept = clf.intercept_ if len(present) > 2 else np.array([-clf.intercept_[0], clf.intercept_[0]])
        self.criterion_classes_ = present
        self.criterion_coef_ = np.ascontiguousarray(coef.T, dtype=np.float64)  # (n_terms, n_criteria)
        self.criterion_intercept_ = np.asarray(intercept, dtype=np.float64)

    def _term_index(self) -> TermIndex:
        # Built by `fit` and pickled with the scorer (building it takes a Python loop over the vocabulary,
        # which a process that loads a model should not pay); a scorer pickled before it existed builds it here.
        index = self.__dict__.get("_terms")
        if index is None or getattr(index, "version", None) != TermIndex.VERSION:
            index = self._terms = TermIndex(self.vocabulary_, CHAR_MARK, CHAR_NGRAMS, _MAX_RUN)
        return index

    def __getstate__(self) -> dict[str, Any]:
        # The vocabulary is `terms_` inverted: pickled, its dict of a few hundred thousand strings cost
        # 0.16 s of every model load, and scoring never reads it (the term index does). `terms_` itself
        # (an array of as many strings, 0.11 s to unpickle) is pickled as one joined string, split again
        # only when a reason first names a phrase (`_TERMS_JOINED`): batch scoring never does.
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the live __dict__
        if "terms_" in state or _TERMS_JOINED in state:
            state.pop("vocabulary_", None)
        terms = state.get("terms_")
        if terms is not None:
            joined = _TERM_SEPARATOR.join(terms.tolist())
            if joined.count(_TERM_SEPARATOR) == max(len(terms) - 1, 0):  # no term holds the separator
                del state["terms_"]
                state[_TERMS_JOINED] = (len(terms), joined)
            else:
                state.pop(_TERMS_JOINED, None)
        return state

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set: the terms and the vocabulary of a loaded scorer, rebuilt once
        # when asked (two threads asking at once both build the same thing; either result is kept).
        if name == "terms_":
            packed = self.__dict__.get(_TERMS_JOINED)
            if packed is None:  # none to unpack, or another thread has just unpacked them
                terms = self.__dict__.get("terms_")
                if terms is not None:
                    return terms
            else:
                count, joined = packed
                terms = np.empty(count, dtype=object)
                terms[:] = joined.split(_TERM_SEPARATOR) if count else []
                self.__dict__["terms_"] = terms
                self.__dict__.pop(_TERMS_JOINED, None)
                return terms
        if name == "vocabulary_" and ("terms_" in self.__dict__ or _TERMS_JOINED in self.__dict__):
            vocabulary = self.__dict__["vocabulary_"] = {str(t): j for j, t in enumerate(self.terms_)}
            return vocabulary
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def tfidf(self, docs: Sequence[str]) -> sparse.csr_matrix:
        """The documents' l2-normalised sublinear TF-IDF rows, as the fitted TfidfVectorizer gives them."""
        check_is_fitted(self, "coef_")
        counts = self._term_index().counts(docs, DOC_SEPARATOR)
        return tfidf_weights(counts, self.idf_, sublinear_tf=True, l2=True)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    def score_docs(self, docs: Sequence[str], criteria: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
        """(P(red), P(yellow), P(green)) and P(criterion) for each of ``criteria`` (zeros for one the head never
        saw), per document, from one pass over each document's terms (the serving path needs both)."""
        return self._score_matrix(self.tfidf(docs), criteria)

    def score_and_terms(
        self, docs: Sequence[str], criteria: Sequence[str] = ()
    ) -> tuple[np.ndarray, np.ndarray, list[DocTerms]]:
        """`score_docs` and each document's TF-IDF terms, which `criterion_evidence` reads again for a red or
        yellow case: a case's terms are counted once per call, not once for its score and once for its reasons."""
        matrix = self.tfidf(docs)
        levels, named = self._score_matrix(matrix, criteria)
        terms = [DocTerms(matrix.indices[a:b], matrix.data[a:b]) for a, b in pairwise(matrix.indptr)]
        return levels, named, terms

    def _score_matrix(self, matrix: sparse.csr_matrix, criteria: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        levels = np.asarray(matrix @ self.coef_) + self.intercept_
        named = np.zeros((matrix.shape[0], len(criteria)), dtype=np.float64)
        heads = self.criterion_classes_ if self.criterion_coef_ is not None else []
        cols = [(j, heads.index(c)) for j, c in enumerate(criteria) if c in heads]
        if cols and matrix.shape[0]:
            proba = _softmax(np.asarray(matrix @ self.criterion_coef_) + self.criterion_intercept_)
            for j, k in cols:
                named[:, j] = proba[:, k]
        return _softmax(levels), named

    def predict_proba_docs(self, docs: Sequence[str]) -> np.ndarray:
        """P(red), P(yellow), P(green) per document."""
        return self.score_docs(docs)[0]

    def criterion_evidence(
        self, doc: str, level: str, max_phrases: int = 3, terms: DocTerms | None = None
    ) -> CriterionEvidence | None:
        """The most likely criterion of ``level`` for this document and the phrases that weigh most for it;
        None for green, or when the scorer has no criterion head or no criterion of that level. ``terms``: the
        document's own, from `score_and_terms` (else counted here)."""
        check_is_fitted(self, "coef_")
        if self.criterion_coef_ is None or level == "green":
            return None
        candidates = [k for k, c in enumerate(self.criterion_classes_) if c.startswith(f"{level}-")]
        if not candidates:
            return None
        if terms is None:
            row = self.tfidf([doc])
            terms = DocTerms(row.indices, row.data)
        idx, weights = terms
        raw = self.criterion_intercept_ + (weights @ self.criterion_coef_[idx] if len(idx) else 0.0)
        proba = _softmax(raw[None, :])[0]
        best = max(candidates, key=lambda k: proba[k])
        phrases: list[str] = []
        if len(idx):
            # A term's share of the criterion's score against the mean of the others: what moves it up.
            others = [k for k in range(len(self.criterion_classes_)) if k != best]
            push = weights * (self.criterion_coef_[idx, best] - self.criterion_coef_[np.ix_(idx, others)].mean(axis=1))
            for j in np.argsort(-push, kind="stable"):
                if push[j] <= 0 or len(phrases) >= max_phrases:
                    break
                phrase = phrase_of(str(self.terms_[idx[j]]))
                if len(phrase) >= 2 and not any(phrase in p or p in phrase for p in phrases):
                    phrases.append(phrase)
        return CriterionEvidence(self.criterion_classes_[best], float(proba[best]), tuple(phrases))


def text_oof(
    docs: Sequence[str],
    y: np.ndarray,
    w: np.ndarray,
    groups: np.ndarray | None,
    seed: int,
    *,
    C: float,
    folds: int,
    train_mask: np.ndarray | None = None,
    criteria: Sequence[str | None] | None = None,
    criterion_features: Sequence[str] = (),
    n_jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray, TextScorer]:
    """Text-score probabilities for every row from a scorer that never trained on it (levels, and the
    criteria named in ``criterion_features``), and the scorer fitted on all training rows.

    ``train_mask`` (default: all rows) says which rows the scorer learns from (the risk model passes its real
    labels: weak labels are the cue rules' guesses, and a text model fitted to them learns the lexicon
    back). Training rows get out-of-fold scores (stratified folds, grouped by ``groups`` when given); the
    other rows get the full scorer's, except a row sharing a group with a training row, which is scored by
    the fold model that held that group out, so no copy of a text leaks into its own score.

    ``n_jobs`` > 1 fits the fold scorers and the full one in that many processes (joblib; from
    `PARALLEL_FROM` training rows): each fit is
    deterministic, so the scores are the same as with one (to the order of floating-point sums).
    """
    docs = list(docs)
    y = np.asarray(y, dtype=np.int64)
    fit_rows = np.arange(len(y)) if train_mask is None else np.flatnonzero(train_mask)
    y_fit = y[fit_rows]
    n_splits = min(folds, int(np.bincount(y_fit, minlength=len(LEVELS)).min()))
    if n_splits < 2:
        raise ValueError("too few cases per level for the out-of-fold text score; set text_score=False")
    group_arr = None if groups is None else np.asarray(groups, dtype=object)
    if group_arr is not None:
        cv: Any = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
        splits = list(cv.split(np.zeros(len(fit_rows)), y_fit, group_arr[fit_rows]))
    else:
        cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
        splits = list(cv.split(np.zeros(len(fit_rows)), y_fit))
    crit = None if criteria is None else list(criteria)

    def fit_args(rows: np.ndarray, with_criteria: bool = False) -> tuple[Any, ...]:
        # Fold scorers name criteria only when those are features; the final one always does (for reasons).
        named = [crit[i] for i in rows] if (with_criteria or criterion_features) and crit is not None else None
        return C, [docs[i] for i in rows], y[rows], w[rows], named

    def score(scorer: TextScorer, rows: np.ndarray) -> np.ndarray:
        chosen = [docs[i] for i in rows]
        return np.hstack(scorer.score_docs(chosen, criterion_features))

    for fit_pos, _ in splits:
        if len(np.unique(y_fit[fit_pos])) < len(LEVELS):
            raise ValueError("a text-score fold lacks a risk level; add labelled cases")
    jobs = [fit_args(fit_rows, with_criteria=True)] + [fit_args(fit_rows[fit_pos]) for fit_pos, _ in splits]
    if n_jobs > 1 and len(fit_rows) >= PARALLEL_FROM:
        scorers = Parallel(n_jobs=min(n_jobs, len(jobs)))(delayed(_fitted)(*job) for job in jobs)
    else:
        scorers = [_fitted(*job) for job in jobs]
    full, fold_scorers = scorers[0], scorers[1:]
    others = np.setdiff1d(np.arange(len(y)), fit_rows)
    oof = np.zeros((len(y), len(LEVELS) + len(criterion_features)))
    if len(others):
        oof[others] = score(full, others)
    for (_, held_pos), scorer in zip(splits, fold_scorers, strict=True):
        held = fit_rows[held_pos]
        if group_arr is not None and len(others):
            held_groups = set(group_arr[held])
            held = np.concatenate([held, others[[g in held_groups for g in group_arr[others]]]])
        oof[held] = score(scorer, held)
    return oof[:, :len(LEVELS)], oof[:, len(LEVELS):], full


def _fitted(
    C: float, docs: list[str], y: np.ndarray, w: np.ndarray, criteria: list[str | None] | None
) -> TextScorer:
    """One scorer fitted (module level, so joblib can run it in another process)."""
    return TextScorer(C).fit(docs, y, w, criteria)

