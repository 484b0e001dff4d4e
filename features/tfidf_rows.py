"""TF-IDF rows computed straight from a fitted `TfidfVectorizer`'s vocabulary and idf.

For one case, sklearn's ``transform`` spends most of its time on per-call input validation and on
building three sparse matrices (counts, tf-idf, normalised); measured 10x the arithmetic. Here the
vectorizer's own analyzer (``build_analyzer``: the same tokenizer, n-grams and preprocessing) reads each
document, and the arithmetic is `TfidfTransformer`'s (sublinear tf, idf, l2 norm) in the vectorizer's
dtype, so the rows equal sklearn's (tests compare them on every demo case).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


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

    def row(self, doc: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, sorted; values) of one document's tf-idf row."""
        vocabulary = self.vocabulary
        counts = Counter(j for j in map(vocabulary.get, self.analyzer(doc)) if j is not None)
        if not counts:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=self.dtype)
        indices = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        values = np.fromiter((counts[j] for j in indices), dtype=self.dtype, count=len(counts))
        if self.sublinear_tf:
            np.log(values, values)
            values += 1.0
        if self.idf is not None:
            values *= self.idf[indices]
        if self.norm == "l2":
            norm = np.sqrt(np.dot(values, values))
            if norm > 0:
                values /= norm
        return indices, values


def stack_rows(
    blocks: Sequence[tuple[FittedTfidf, float, Sequence[str]]], n_docs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """CSR parts (data, indices, indptr, n_columns) of the blocks side by side, each scaled by its weight.

    ``blocks``: (fitted vectorizer, weight, one document per row); a block's columns follow the previous
    block's, as ``scipy.sparse.hstack`` of the blocks would place them.
    """
    data: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    for i in range(n_docs):
        offset, length = 0, 0
        for fitted, weight, docs in blocks:
            cols, values = fitted.row(docs[i])
            if len(cols):
                indices.append(cols + offset)
                data.append(values * values.dtype.type(weight) if weight != 1.0 else values)
                length += len(cols)
            offset += fitted.n_features
        indptr[i + 1] = indptr[i] + length
    n_columns = sum(fitted.n_features for fitted, _, _ in blocks)
    dtype = blocks[0][0].dtype if blocks else np.dtype(np.float32)
    return (
        np.concatenate(data) if data else np.empty(0, dtype=dtype),
        np.concatenate(indices) if indices else np.empty(0, dtype=np.int32),
        indptr,
        n_columns,
    )
