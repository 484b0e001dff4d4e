"""TF-IDF rows computed straight from a fitted `TfidfVectorizer`'s vocabulary and idf.

For one case, sklearn's ``transform`` spends most of its time on per-call input validation and on
building three sparse matrices (counts, tf-idf, normalised); measured 10x the arithmetic. For a batch, a
Python loop per term (look-up, filter, count) was most of the routing time. Here the vectorizer's own
analyzer (``build_analyzer``: the same tokenizer, n-grams and preprocessing) reads each document, all
terms of a batch are looked up in one pass, and the arithmetic is `TfidfTransformer`'s (sublinear tf, idf,
sklearn's l2 normalisation) in the vectorizer's dtype: the rows equal sklearn's bit for bit (tests compare
them on every demo case).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


@dataclass(frozen=True)
class FittedTfidf:
    """What a fitted vectorizer needs to weight one document, taken from it once."""

    analyzer: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: np.ndarray | None
    sublinear_tf: bool
    norm: str | None
    dtype: np.dtype

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer) -> FittedTfidf:
        if vectorizer.binary or vectorizer.norm not in ("l2", None):
            raise ValueError("only non-binary vectorizers with l2 or no norm are supported")
        idf = vectorizer.idf_ if vectorizer.use_idf else None
        return cls(vectorizer.build_analyzer(), vectorizer.vocabulary_, idf, vectorizer.sublinear_tf,
                   vectorizer.norm, np.dtype(vectorizer.dtype))

    @property
    def n_features(self) -> int:
        return len(self.vocabulary)

    def rows(self, docs: Sequence[str]) -> sp.csr_matrix:
        """The documents' tf-idf rows (sorted column indices), from one vocabulary look-up over all their terms.

        The terms are the analyzer's, so they are sklearn's; looked up together (``map`` in C, misses as -1)
        rather than counted document by document, which cost most of the time for a batch.
        """
        grams = [self.analyzer(doc) for doc in docs]
        lengths = np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))
        cols = np.fromiter(map(self.vocabulary.get, chain.from_iterable(grams), repeat(-1)), dtype=np.int64,
                           count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(grams), dtype=np.int64), lengths)
        found = cols >= 0
        matrix = sp.csr_matrix((np.ones(int(found.sum()), dtype=self.dtype), (rows[found], cols[found])),
                               shape=(len(grams), self.n_features))
        matrix.sum_duplicates()  # counts, with each row's columns sorted
        if self.sublinear_tf:
            np.log(matrix.data, matrix.data)
            matrix.data += 1.0
        if self.idf is not None:
            matrix.data *= self.idf[matrix.indices]  # in the row dtype, rounded as sklearn does
        return normalize(matrix, copy=False) if self.norm == "l2" else matrix


def stack_rows(blocks: Sequence[tuple[FittedTfidf, float, Sequence[str]]], n_docs: int) -> sp.csr_matrix:
    """The blocks' rows side by side, each scaled by its weight, as ``scipy.sparse.hstack`` of the blocks
    would place them. ``blocks``: (fitted vectorizer, weight, one document per row)."""
    if not blocks:
        return sp.csr_matrix((n_docs, 0), dtype=np.float32)
    parts = []
    for fitted, weight, docs in blocks:
        part = fitted.rows(docs)
        if weight != 1.0:
            part.data *= part.dtype.type(weight)
        parts.append(part)
    return sp.hstack(parts, format="csr")
