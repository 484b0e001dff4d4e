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
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from features.key_table import KeyTable


def _looked_up(items: Sequence[list[str]], table: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(document, value) of every item of every document, -1 for an item not in ``table``: one ``map`` in C over
    a whole batch instead of a look-up loop per document."""
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    values = np.fromiter(map(table.get, chain.from_iterable(items), repeat(-1)), dtype=np.int64,
                         count=int(lengths.sum()))
    return np.repeat(np.arange(len(items), dtype=np.int64), lengths), values


@dataclass(frozen=True)
class WordGrams:
    """A word analyzer's terms looked up by word number: each token once in a dict, each bigram as a pair of
    numbers in a `KeyTable`, so no "a b" string is built per bigram (building and hashing them was most of
    the router's features for a batch).

    Exact for a tokenizer whose tokens hold no space (``split_on_spaces``): a vocabulary bigram then splits
    into its two tokens in one way only. Every word of a vocabulary bigram has a number even when it is no
    unigram of the vocabulary (``max_df`` or ``max_features`` may drop it), so nothing depends on that.
    """

    tokenizer: Callable[[str], list[str]]
    words: dict[str, int]  # a word of a vocabulary unigram or bigram -> its number
    unigram: np.ndarray  # word number -> column of the word as a unigram, -1 if it is none
    pairs: KeyTable | None  # first * len(words) + second -> column of the bigram; None: unigrams only

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer) -> WordGrams | None:
        """None where the analyzer is more than ``tokenizer`` and word 1- or 1..2-grams (then the analyzer runs)."""
        if (vectorizer.analyzer != "word" or vectorizer.tokenizer is None or vectorizer.preprocessor is not None
                or vectorizer.lowercase or vectorizer.strip_accents is not None or vectorizer.stop_words is not None
                or vectorizer.input != "content" or tuple(vectorizer.ngram_range) not in ((1, 1), (1, 2))):
            return None
        words: dict[str, int] = {}
        unigram: dict[int, int] = {}
        bigrams: list[tuple[int, int, int]] = []
        for term, column in vectorizer.vocabulary_.items():
            parts = term.split(" ")
            if len(parts) == 1:
                unigram[words.setdefault(term, len(words))] = column
            elif len(parts) == 2:
                bigrams.append((words.setdefault(parts[0], len(words)), words.setdefault(parts[1], len(words)), column))
            else:
                return None
        columns = np.full(len(words), -1, dtype=np.int64)
        columns[list(unigram)] = list(unigram.values())
        pairs = None
        if tuple(vectorizer.ngram_range) == (1, 2):
            table = np.asarray(bigrams, dtype=np.int64).reshape(-1, 3)
            pairs = KeyTable(table[:, 0] * len(words) + table[:, 1], table[:, 2])
        return cls(vectorizer.tokenizer, words, columns, pairs)

    def matches(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(document, column) of every vocabulary uni- and bigram occurrence in ``docs``."""
        rows, ids = _looked_up([self.tokenizer(doc) for doc in docs], self.words)
        known = ids >= 0
        cols = np.full(len(ids), -1, dtype=np.int64)
        cols[known] = self.unigram[ids[known]]
        if self.pairs is not None and len(ids) > 1:
            first, second = ids[:-1], ids[1:]
            paired = (first >= 0) & (second >= 0) & (rows[:-1] == rows[1:])
            bigrams = np.full(len(first), -1, dtype=np.int64)
            bigrams[paired] = self.pairs.columns_of(first[paired] * len(self.words) + second[paired])
            rows, cols = np.concatenate([rows, rows[:-1]]), np.concatenate([cols, bigrams])
        found = cols >= 0
        return rows[found], cols[found]


@dataclass(frozen=True)
class FittedTfidf:
    """What a fitted vectorizer needs to weight one document, taken from it once."""

    analyzer: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: np.ndarray | None
    sublinear_tf: bool
    norm: str | None
    dtype: np.dtype
    words: WordGrams | None = None  # the word analyzer's terms by number, where exact (see `WordGrams`)

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer, *, split_on_spaces: bool = False) -> FittedTfidf:
        """``split_on_spaces``: the vectorizer's tokenizer splits text on spaces, so no token holds one."""
        if vectorizer.binary or vectorizer.norm not in ("l2", None):
            raise ValueError("only non-binary vectorizers with l2 or no norm are supported")
        idf = vectorizer.idf_ if vectorizer.use_idf else None
        return cls(vectorizer.build_analyzer(), vectorizer.vocabulary_, idf, vectorizer.sublinear_tf,
                   vectorizer.norm, np.dtype(vectorizer.dtype), WordGrams.of(vectorizer) if split_on_spaces else None)

    @property
    def n_features(self) -> int:
        return len(self.vocabulary)

    def matches(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(document, column) of every vocabulary term occurrence: the analyzer's terms, looked up together
        (``map`` in C, misses dropped) rather than counted document by document."""
        if self.words is not None:
            return self.words.matches(docs)
        rows, cols = _looked_up([self.analyzer(doc) for doc in docs], self.vocabulary)
        found = cols >= 0
        return rows[found], cols[found]

    def rows(self, docs: Sequence[str]) -> sp.csr_matrix:
        """The documents' tf-idf rows (sorted column indices)."""
        rows, cols = self.matches(docs)
        counts = term_counts(rows, cols, (len(docs), self.n_features), self.dtype)
        return tfidf_weights(counts, self.idf, sublinear_tf=self.sublinear_tf, l2=self.norm == "l2")

    def row(self, doc: str) -> tuple[np.ndarray, np.ndarray]:
        """One document's tf-idf row as (sorted column indices, values): `rows` for one document, bit for bit,
        without building sparse matrices (their construction checks cost more than the arithmetic here)."""
        columns, counts = np.unique(self.matches([doc])[1], return_counts=True)
        columns = columns.astype(np.int32)
        data = counts.astype(self.dtype)
        _weigh(data, columns, np.array([0, len(data)], dtype=np.int32), (1, self.n_features), self.idf,
               sublinear_tf=self.sublinear_tf, l2=self.norm == "l2")
        return columns, data


class _CsrArrays(NamedTuple):
    """The four arrays sklearn's `inplace_csr_row_normalize_l2` reads, without a matrix around them."""

    data: np.ndarray
    shape: tuple[int, int]
    indices: np.ndarray
    indptr: np.ndarray


def term_counts(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], dtype: Any) -> sp.csr_matrix:
    """How often each (row, column) pair occurs, as a CSR matrix with each row's columns sorted.

    One sort of the pairs' numbers, then run lengths: no COO matrix and no per-call checks, which cost more
    than the counting itself for the one case a request scores. The sort is numpy's stable one (timsort):
    the pairs come as a few blocks of ascending rows, and on a batch's 0.7M pairs it took 25 ms where
    `np.unique`'s quicksort took 44.
    """
    n_rows, n_cols = shape
    keys = rows * n_cols + cols  # a new array: sorted in place below
    keys.sort(kind="stable")
    first = np.ones(len(keys), dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=len(keys))
    keys = keys[starts]
    indptr = np.searchsorted(keys, np.arange(n_rows + 1, dtype=np.int64) * n_cols)
    return sp.csr_matrix((counts.astype(dtype), (keys % n_cols).astype(np.int32), indptr), shape=shape)


def tfidf_weights(counts: sp.csr_matrix, idf: np.ndarray | None, *, sublinear_tf: bool, l2: bool) -> sp.csr_matrix:
    """`TfidfTransformer`'s arithmetic on a count matrix, in place and in its dtype (sklearn's own l2 step)."""
    _weigh(counts.data, counts.indices, counts.indptr, counts.shape, idf, sublinear_tf=sublinear_tf, l2=l2)
    return counts


def _weigh(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int],
           idf: np.ndarray | None, *, sublinear_tf: bool, l2: bool) -> None:
    """`tfidf_weights` on a CSR matrix's arrays: one arithmetic for a batch and for one document."""
    if sublinear_tf:
        np.log(data, data)
        data += 1.0
    if idf is not None:
        data *= idf[indices]  # in the row dtype, rounded as sklearn does
    if l2:
        inplace_csr_row_normalize_l2(_CsrArrays(data, shape, indices, indptr))


def stack_rows(blocks: Sequence[tuple[FittedTfidf, float, Sequence[str]]], n_docs: int) -> sp.csr_matrix:
    """The blocks' rows side by side, each scaled by its weight, as ``scipy.sparse.hstack`` of the blocks
    would place them. ``blocks``: (fitted vectorizer, weight, one document per row)."""
    if not blocks:
        return sp.csr_matrix((n_docs, 0), dtype=np.float32)
    if n_docs == 1:  # a request's case: one matrix built at the end instead of one per block and a stack
        return _one_row(blocks)
    parts = []
    for fitted, weight, docs in blocks:
        part = fitted.rows(docs)
        if weight != 1.0:
            part.data *= part.dtype.type(weight)
        parts.append(part)
    return sp.hstack(parts, format="csr")


def _one_row(blocks: Sequence[tuple[FittedTfidf, float, Sequence[str]]]) -> sp.csr_matrix:
    """`stack_rows` for one document: each block's `FittedTfidf.row`, weighted, placed after the blocks before."""
    columns, values, offset = [], [], 0
    for fitted, weight, (doc,) in blocks:
        cols, data = fitted.row(doc)
        if weight != 1.0:
            data *= data.dtype.type(weight)
        columns.append(cols + np.int32(offset))
        values.append(data)
        offset += fitted.n_features
    data = np.concatenate(values)
    return sp.csr_matrix((data, np.concatenate(columns), np.array([0, len(data)], dtype=np.int32)),
                         shape=(1, offset))
