"""The text model's terms for many documents at once: a sparse count matrix over a fitted vocabulary.

Why: scoring made every character 2- and 3-gram of a case a new Python string and looked it up in a dict
(0.8 ms a case, the largest single cost of `triage predict`). Here a character n-gram is a number (its
code points, 21 bits each) and the vocabulary's character n-grams a sorted array of such numbers, so the
look-up is one `np.searchsorted` over a whole batch. The counts equal those of `text_grams` looked up in
the vocabulary (tested against it):

- a gram that crosses punctuation or a space holds a character that no vocabulary gram holds (those are
  cut from runs of letters, digits and CJK characters), so it never matches: no run splitting is needed;
- a run's grams past its first `MAX_RUN` characters are masked by their offset in the run, as
  `text_grams` reads a run only up to there;
- documents are joined with a U+0001 between them, which no gram holds, so nothing matches across two.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import chain, repeat

import numpy as np
from scipy import sparse

from features.key_table import KeyTable
from features.tfidf_rows import term_counts
from features.vectorizer import split_tokens

__all__ = ["TermIndex"]

#: Bits per code point in a character n-gram's number: every code point is below 2**21.
_BITS = 21
_BMP = 0x10000


@cache
def _alnum_bmp() -> np.ndarray:
    """Whether each Basic Multilingual Plane code point is a run character (`[^\\W_]`, i.e. str.isalnum)."""
    return np.fromiter((chr(c).isalnum() for c in range(_BMP)), dtype=bool, count=_BMP)


def _alnum(codes: np.ndarray) -> np.ndarray:
    mask = np.zeros(len(codes), dtype=bool)
    low = codes < _BMP
    mask[low] = _alnum_bmp()[codes[low]]
    for code in np.unique(codes[~low]):  # emoji, rare CJK: few, if any
        mask[codes == code] = chr(int(code)).isalnum()
    return mask


def _codes(text: str) -> np.ndarray:
    """Code points of ``text`` (lone surrogates included: JSON lets a client send them), NUL read as U+0001.

    No code is 0, so an n-gram's number has its first code point in its top bits and n-grams of different
    sizes never share a number ("\\0AB" would otherwise be "AB"); both are not run characters, so
    no vocabulary gram holds either.
    """
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
    codes[codes == 0] = 1
    return codes


def _gram_keys(codes: np.ndarray, n: int) -> np.ndarray:
    """The number of the n-gram starting at each position that has n characters left."""
    keys = codes[: len(codes) - n + 1].copy()
    for k in range(1, n):
        keys = (keys << _BITS) | codes[k : len(codes) - n + 1 + k]
    return keys


# Pickled scorers name the table by this path.
_KeyTable = KeyTable


class TermIndex:
    """A fitted vocabulary (`text_grams` terms → column) split into word terms and numbered character grams.

    Built from ``vocabulary`` whose character terms start with ``char_mark``; ``ngrams`` are the character
    n-gram sizes (each at most 3: three code points fill 63 bits). Pickled with its scorer; `version` says
    which layout, so a scorer holding an older one rebuilds it instead of reading attributes it lacks.
    """

    #: Layout of the pickled index; bump when its attributes change.
    VERSION = 2

    def __init__(self, vocabulary: dict[str, int], char_mark: str, ngrams: Sequence[int], max_run: int) -> None:
        if not ngrams or max(ngrams) > 3 or min(ngrams) < 1:
            raise ValueError("character n-grams of 1 to 3 characters only")
        self.version = self.VERSION
        self.n_terms = len(vocabulary)
        self.ngrams = tuple(ngrams)
        self.max_run = max_run
        self.words: dict[str, int] = {}
        bigrams: list[tuple[str, int]] = []
        by_length: dict[int, tuple[list[str], list[int]]] = {}
        for term, column in vocabulary.items():
            if term.startswith(char_mark):
                grams, columns = by_length.setdefault(len(term) - len(char_mark), ([], []))
                grams.append(term[len(char_mark):])
                columns.append(column)
            elif " " in term:
                bigrams.append((term, column))
            else:
                self.words[term] = column
        pair_keys = [self.n_terms * self.words[a] + self.words[b] for a, b in (t.split(" ") for t, _ in bigrams)]
        pair_columns = np.asarray([c for _, c in bigrams], dtype=np.int64)
        self.pairs = KeyTable(np.asarray(pair_keys, dtype=np.int64), pair_columns)
        keys, columns = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
        for n, (grams, cols) in by_length.items():
            codes = _codes("".join(grams)).reshape(len(grams), n)
            # `text_grams` cuts grams from runs only: a gram with another character can never occur.
            runs = _alnum(codes.ravel()).reshape(codes.shape).all(axis=1)
            key = codes[:, 0].copy()
            for k in range(1, n):
                key = (key << _BITS) | codes[:, k]
            keys.append(key[runs])
            columns.append(np.asarray(cols, dtype=np.int64)[runs])
        self.chars = KeyTable(np.concatenate(keys), np.concatenate(columns))

    def counts(self, docs: Sequence[str], separator: str) -> sparse.csr_matrix:
        """How often each vocabulary term occurs in each document (`text_doc`: words, ``separator``, text)."""
        parts = [doc.partition(separator) for doc in docs]
        word_rows, word_cols = self._word_matches([split_tokens(words) for words, _, _ in parts])
        char_rows, char_cols = self._char_matches([text for _, _, text in parts])
        row, col = np.concatenate([word_rows, char_rows]), np.concatenate([word_cols, char_cols])
        return term_counts(row, col, (len(docs), self.n_terms), np.float64)

    def _word_matches(self, tokens: Sequence[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(document, column) of every word and word bigram of each document found in the vocabulary.

        A bigram is looked up by its two words' columns: both words of a vocabulary bigram are in the
        vocabulary (each occurs in at least as many documents as the pair), so no "a b" string is built.
        """
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        words = np.fromiter(map(self.words.get, chain.from_iterable(tokens), repeat(-1)), dtype=np.int64)
        rows = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
        pairs = self.n_terms * words[:-1] + words[1:]
        paired = (words[:-1] >= 0) & (words[1:] >= 0) & (rows[:-1] == rows[1:])
        bigrams = np.full(len(pairs), -1, dtype=np.int64)
        if paired.any():
            bigrams[paired] = self.pairs.columns_of(pairs[paired])
        row, col = np.concatenate([rows, rows[:-1]]), np.concatenate([words, bigrams])
        found = col >= 0
        return row[found], col[found]

    def _char_matches(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(document, column) of every character gram of ``texts`` found in the vocabulary."""
        if not texts or not len(self.chars):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        codes = _codes("\x01".join(texts))
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        doc_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths + 1)[: len(codes)]
        offset = self._run_offsets(codes)
        rows, cols = [], []
        for n in self.ngrams:
            if len(codes) < n:
                continue
            keys = _gram_keys(codes, n)
            found = self.chars.columns_of(keys)
            hit = found >= 0
            if offset is not None:
                hit &= offset[: len(keys)] + n <= self.max_run
            rows.append(doc_of[: len(keys)][hit])
            cols.append(found[hit])
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(cols)

    def _run_offsets(self, codes: np.ndarray) -> np.ndarray | None:
        """Each position's offset in its run of run characters; None when no run can be long enough to cut."""
        if len(codes) <= self.max_run:
            return None
        alnum = _alnum(codes)
        starts = alnum & ~np.concatenate(([False], alnum[:-1]))
        positions = np.arange(len(codes), dtype=np.int64)
        return positions - np.maximum.accumulate(np.where(starts, positions, 0))
