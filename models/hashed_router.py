"""A department router that learns from chunks: hashed features + SGD, calibrated out of fold.

Why: the default router (`models.router.build_router`) builds a TF-IDF vocabulary and the full feature
matrix of every training case in one process, and LinearSVC needs that matrix whole. This one never holds
more than one chunk of cases:

- **features** (`HashedCaseVectorizer`): the same jieba word n-grams (`features.text.case_tokens`), title
  words and character n-grams as `CaseVectorizer`, hashed into fixed-size blocks (`HashingVectorizer`, no
  vocabulary). Document frequencies per hashed column are counted chunk by chunk, so the blocks keep
  TF-IDF weighting (sublinear tf, smooth idf, l2 per block, the block weights) and ``min_df``.
- **learning** (`HashedRouter.fit_stream`): one pass reads each chunk, hashes it and spills the counts
  to a temporary directory; then ``epochs`` passes over the spilled chunks call `SGDClassifier.partial_fit`
  one chunk at a time, with class weights from the first pass's counts.
- **calibration**: ``calibration_folds`` extra SGD models are trained in the same passes, each skipping
  one fold of the cases (fold = hash of the case text, so copies of one text share a fold); their scores
  on the skipped cases fit one sigmoid per department (Platt, as `CalibratedClassifierCV` with
  ``ensemble=False`` does with cross-validated scores), which turn the full model's scores into
  probabilities that sum to 1.

Memory: one chunk of text and counts, plus (folds + 1) coefficient matrices of departments x hashed
columns while training; the fitted router keeps one (float32).
"""

from __future__ import annotations

import logging
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import _SigmoidCalibration
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from features.text import case_text
from features.vectorizer import CaseVectorizer, as_pairs, split_tokens

logger = logging.getLogger(__name__)


class HashedCaseVectorizer(CaseVectorizer):
    """`CaseVectorizer`'s blocks (words, title words, characters) hashed into ``n_features`` columns each.

    Same text preparation as `CaseVectorizer` (inherited), so both routers read identical tokens. Fitting
    only counts document frequencies per hashed column (`partial_fit`, chunk by chunk); ``*_max_features``
    do not apply (``n_features`` sizes every block).
    """

    def __init__(
        self,
        *,
        n_features: int = 2**18,
        word_ngram_range: tuple[int, int] = (1, 2),
        word_min_df: int = 2,
        word_max_df: float = 1.0,
        word_max_features: int | None = None,
        title_weight: float = 1.0,
        char_weight: float = 1.0,
        char_ngram_range: tuple[int, int] = (2, 4),
        char_min_df: int = 3,
        char_max_features: int | None = None,
        char_source: str = "text",
        body_max_chars: int | None = None,
        sublinear_tf: bool = True,
    ) -> None:
        super().__init__(
            word_ngram_range=word_ngram_range, word_min_df=word_min_df, word_max_df=word_max_df,
            word_max_features=word_max_features, title_weight=title_weight, char_weight=char_weight,
            char_ngram_range=char_ngram_range, char_min_df=char_min_df, char_max_features=char_max_features,
            char_source=char_source, body_max_chars=body_max_chars, sublinear_tf=sublinear_tf,
        )
        self.n_features = n_features

    def _hashers(self) -> list[tuple[str, HashingVectorizer, float]]:
        """(block, hasher, weight) for each enabled block, in `CaseVectorizer`'s order."""
        common = {"n_features": self.n_features, "alternate_sign": False, "norm": None, "lowercase": False,
                  "dtype": np.float32}
        blocks = [("words", HashingVectorizer(tokenizer=split_tokens, token_pattern=None,
                                              ngram_range=tuple(self.word_ngram_range), **common), 1.0)]
        if self.title_weight:
            blocks.append(("title", HashingVectorizer(tokenizer=split_tokens, token_pattern=None, ngram_range=(1, 1),
                                                      **common), self.title_weight))
        if self.char_weight:
            blocks.append(("chars", HashingVectorizer(analyzer="char", ngram_range=tuple(self.char_ngram_range),
                                                      **common), self.char_weight))
        return blocks

    def counts(self, cases: Any) -> sp.csr_matrix:
        """Raw term counts of every block side by side (no fitted state): what the spill stores."""
        chars, words, titles = self._documents(cases)
        docs = {"words": words, "title": titles, "chars": chars}
        return sp.hstack([h.transform(docs[name]) for name, h, _ in self._hashers()], format="csr")

    def partial_fit(
        self, cases: Any = None, y: Any = None, *, counts: sp.csr_matrix | None = None
    ) -> HashedCaseVectorizer:
        """Add one chunk's document frequencies (from the cases, or their `counts`)."""
        counts = self.counts(cases) if counts is None else counts
        if not hasattr(self, "df_"):
            self.df_ = np.zeros(counts.shape[1], dtype=np.int64)
            self.n_docs_ = 0
        self.df_ += np.bincount(counts.indices, minlength=counts.shape[1])
        self.n_docs_ += counts.shape[0]
        self.__dict__.pop("idf_", None)
        return self

    def fit(self, X: Any, y: Any = None) -> HashedCaseVectorizer:
        self.__dict__.pop("df_", None)
        return self.partial_fit(X)

    def _idf(self) -> np.ndarray:
        """Smooth idf per hashed column (as TfidfVectorizer), 0 for columns outside min_df / max_df."""
        if "idf_" not in self.__dict__:
            check_is_fitted(self, "df_")
            n, df = self.n_docs_, self.df_
            idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
            keep = np.ones(len(df), dtype=bool)
            for i, (name, _, _) in enumerate(self._hashers()):
                min_df = self.char_min_df if name == "chars" else (self.word_min_df if name == "words" else 1)
                min_df = min_df if n >= 10 * min_df else 1  # as CaseVectorizer: tiny sets keep every term
                block = slice(i * self.n_features, (i + 1) * self.n_features)
                keep[block] &= df[block] >= min_df
                if name == "words" and self.word_max_df < 1.0:
                    keep[block] &= df[block] <= self.word_max_df * n
            self.__dict__["idf_"] = np.where(keep, idf, 0.0).astype(np.float32)
        return self.__dict__["idf_"]

    def weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """TF-IDF of raw `counts`: sublinear tf, idf, l2 per block, times the block's weight."""
        X = counts.astype(np.float32, copy=True)
        if self.sublinear_tf:
            np.log(X.data, out=X.data)
            X.data += 1.0
        X = X @ sp.diags(self._idf())
        X = sp.csr_matrix(X)
        blocks = []
        for i, (_, _, weight) in enumerate(self._hashers()):
            block = X[:, i * self.n_features : (i + 1) * self.n_features]
            norms = np.sqrt(np.asarray(block.multiply(block).sum(axis=1)).ravel())
            norms[norms == 0] = 1.0
            blocks.append(sp.diags((weight / norms).astype(np.float32)) @ block)
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def transform(self, X: Any) -> sp.csr_matrix:
        return self.weigh(self.counts(X))

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> sp.csr_matrix:
        counts = self.counts(X)
        self.__dict__.pop("df_", None)
        self.partial_fit(counts=counts)
        return self.weigh(counts)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "idf_"}


class CalibratedSGD(ClassifierMixin, BaseEstimator):
    """A linear model from `SGDClassifier.partial_fit` with one sigmoid per class on out-of-fold scores.

    Holds only arrays once fitted (``coef_`` float32, ``intercept_``, ``a_``, ``b_``), so it pickles small
    and scores with one sparse product. Trained through `HashedRouter`; `fit` streams an in-memory
    matrix the same way, for sklearn's contract.
    """

    def __init__(
        self,
        *,
        alpha: float = 1e-5,
        loss: str = "modified_huber",
        epochs: int = 5,
        chunk_size: int = 2000,
        calibration_folds: int = 3,
        class_weight: str | None = "balanced",
        random_state: int = 0,
    ) -> None:
        self.alpha = alpha
        self.loss = loss
        self.epochs = epochs
        self.chunk_size = chunk_size
        self.calibration_folds = calibration_folds
        self.class_weight = class_weight
        self.random_state = random_state

    def _sgd(self, weights: dict[Any, float] | None, seed: int) -> SGDClassifier:
        return SGDClassifier(loss=self.loss, alpha=self.alpha, class_weight=weights, average=False,
                             random_state=seed)

    def fit(self, X: sp.spmatrix, y: Any) -> CalibratedSGD:
        y = np.asarray(y, dtype=object)
        folds = np.arange(len(y)) % self.calibration_folds
        chunks = [(X[i : i + self.chunk_size], y[i : i + self.chunk_size], folds[i : i + self.chunk_size])
                  for i in range(0, len(y), self.chunk_size)]
        return self.fit_chunks(lambda: iter(chunks), np.unique(y), pd.Series(y).value_counts().to_dict())

    def fit_chunks(self, chunks: Any, classes: np.ndarray, class_counts: dict[Any, int]) -> CalibratedSGD:
        """Train on ``chunks()`` (a fresh iterator of (features, labels, fold ids) per call, one call per
        epoch and one for the calibration scores), then calibrate."""
        classes = np.asarray(sorted(classes, key=str), dtype=object)
        if len(classes) < 2:
            raise ValueError("the hashed router needs cases of at least 2 departments")
        weights = None
        if self.class_weight == "balanced":
            total = sum(class_counts.values())
            weights = {c: total / (len(classes) * class_counts[c]) for c in classes}
        k = self.calibration_folds
        models = [self._sgd(weights, self.random_state + i) for i in range(k + 1)]  # k fold models, then full
        for _ in range(self.epochs):
            for X, y, folds in chunks():
                for i, model in enumerate(models):
                    rows = folds != i if i < k else slice(None)
                    if i < k and not rows.any():
                        continue
                    model.partial_fit(X[rows], y[rows], classes=classes)
        scores, labels = [], []
        for X, y, folds in chunks():
            s = np.zeros((X.shape[0], len(classes) if len(classes) > 2 else 1))
            for i in range(k):
                rows = folds == i
                if rows.any():
                    s[rows] = models[i].decision_function(X[rows]).reshape(int(rows.sum()), -1)
            scores.append(s)
            labels.append(y)
        self._calibrate(np.vstack(scores), np.concatenate(labels), classes)
        full = models[k]
        self.classes_ = classes
        self.coef_ = np.asarray(full.coef_, dtype=np.float32)
        self.intercept_ = np.asarray(full.intercept_, dtype=np.float64)
        self.n_features_in_ = self.coef_.shape[1]
        return self

    def _calibrate(self, scores: np.ndarray, y: np.ndarray, classes: np.ndarray) -> None:
        columns = classes[1:] if len(classes) == 2 else classes
        a, b = [], []
        for j, c in enumerate(columns):
            sigmoid = _SigmoidCalibration().fit(scores[:, j], (y == c).astype(np.float64))
            a.append(sigmoid.a_)
            b.append(sigmoid.b_)
        self.a_, self.b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)

    def decision_function(self, X: sp.spmatrix) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X @ self.coef_.T, dtype=np.float64) + self.intercept_

    def predict_proba(self, X: sp.spmatrix) -> np.ndarray:
        """One sigmoid per department, normalised to sum to 1 (sklearn's multiclass sigmoid calibration)."""
        check_is_fitted(self, "a_")
        p = expit(-(self.a_ * self.decision_function(X) + self.b_))
        if len(self.classes_) == 2:
            return np.hstack([1.0 - p, p])
        total = p.sum(axis=1, keepdims=True)
        return np.divide(p, total, out=np.full_like(p, 1.0 / len(self.classes_)), where=total > 0)

    def predict(self, X: sp.spmatrix) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _fold(title: str, body: str, k: int) -> int:
    """The calibration fold of a case: copies of one text fall in one fold, whatever their order."""
    return zlib.crc32(case_text(title, body).encode("utf-8")) % k


class HashedRouter(Pipeline):
    """``Pipeline([("features", HashedCaseVectorizer), ("classifier", CalibratedSGD)])`` whose `fit` streams.

    Scoring is the Pipeline's own (`predict_proba`, ``router[:-1].transform``), so `TriageBundle` and the
    MLflow model serve it like the default router. `fit` cuts in-memory cases into chunks (rows shuffled
    once with the seed, since files often come sorted by department); `fit_stream` takes chunks from any
    source, read once.
    """

    def fit(self, X: Any, y: Any = None, **params: Any) -> HashedRouter:
        pairs = as_pairs(X)
        labels = np.asarray(y, dtype=object)
        if len(labels) != len(pairs):
            raise ValueError(f"{len(labels)} labels for {len(pairs)} cases")
        order = np.random.default_rng(self.steps[-1][1].random_state).permutation(len(pairs))
        size = self.steps[-1][1].chunk_size

        def chunks() -> Iterator[tuple[list[tuple[str, str]], np.ndarray]]:
            for start in range(0, len(order), size):
                take = order[start : start + size]
                yield [pairs[i] for i in take], labels[take]

        return self.fit_stream(chunks())

    def fit_stream(self, chunks: Iterable[tuple[Any, Any]]) -> HashedRouter:
        """Learn from (cases, departments) chunks read once: hash and spill, then SGD epochs over the spill."""
        vectorizer: HashedCaseVectorizer = self.steps[0][1]
        classifier: CalibratedSGD = self.steps[-1][1]
        vectorizer.__dict__.pop("df_", None)
        rng = np.random.default_rng(classifier.random_state)
        with tempfile.TemporaryDirectory(prefix="hashed-router-") as tmp:
            spilled: list[Path] = []
            counts: dict[Any, int] = {}
            for i, (cases, y) in enumerate(chunks):
                pairs = as_pairs(cases)
                y = np.asarray(y, dtype=object)
                if len(y) != len(pairs):
                    raise ValueError(f"chunk {i}: {len(y)} labels for {len(pairs)} cases")
                if not len(y):
                    continue
                raw = vectorizer.counts(pairs)
                vectorizer.partial_fit(counts=raw)
                y = y.astype(str).astype(object)  # as the spill stores them
                for label, n in pd.Series(y).value_counts().items():
                    counts[label] = counts.get(label, 0) + int(n)
                folds = np.array([_fold(t, b, classifier.calibration_folds) for t, b in pairs], dtype=np.int64)
                path = Path(tmp) / f"chunk-{i:06d}.npz"
                np.savez(path, data=raw.data, indices=raw.indices, indptr=raw.indptr, shape=raw.shape,
                         y=y.astype(str), folds=folds)
                spilled.append(path)
            if not spilled:
                raise ValueError("cannot fit the hashed router on zero cases")
            logger.info("hashed router: %d cases in %d chunks spilled", vectorizer.n_docs_, len(spilled))

            def read() -> Iterator[tuple[sp.csr_matrix, np.ndarray, np.ndarray]]:
                for path in [spilled[j] for j in rng.permutation(len(spilled))]:
                    with np.load(path) as z:
                        raw = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
                        yield vectorizer.weigh(raw), z["y"].astype(object), z["folds"]

            classifier.fit_chunks(read, np.asarray(list(counts), dtype=object), counts)
        return self


def build_hashed_router(features: Any, classifier: Any, seed: int) -> HashedRouter:
    """An unfitted `HashedRouter` from the config's `FeatureParams` and `ClassifierParams` (kind hashed_sgd)."""
    h = classifier.hashed
    feature_args = features.model_dump(exclude={"word_max_features", "char_max_features"})
    return HashedRouter([
        ("features", HashedCaseVectorizer(n_features=h.n_features, **feature_args)),
        ("classifier", CalibratedSGD(alpha=h.alpha, loss=h.loss, epochs=h.epochs, chunk_size=h.chunk_size,
                                     calibration_folds=classifier.calibration_folds,
                                     class_weight=classifier.class_weight, random_state=seed)),
    ])
