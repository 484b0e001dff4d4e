"""`CaseVectorizer`: one sklearn transformer from (title, body) to the sparse features the router reads.

It owns the word, title and character TF-IDF vectorizers so that each case is normalised and tokenised
exactly once per call, and so a single case goes through without pandas or ColumnTransformer overhead
(the serving hot path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from features.text import case_text, case_tokens, mask_personal_data, normalise, tokenise

TOKEN_SEPARATOR = " "


def split_tokens(doc: str) -> list[str]:
    """Tokenizer for already tokenised, space-joined text (module level so fitted vectorizers pickle)."""
    return doc.split(TOKEN_SEPARATOR) if doc else []


def as_pairs(cases: Any) -> list[tuple[str, str]]:
    """Accept a DataFrame with title/body columns or a sequence of (title, body) pairs."""
    if isinstance(cases, pd.DataFrame):
        missing = {"title", "body"} - set(cases.columns)
        if missing:
            raise ValueError(f"input is missing column(s) {sorted(missing)}; expected 'title' and 'body'")
        titles = cases["title"].tolist()
        bodies = cases["body"].tolist()
        return [(_str(t), _str(b)) for t, b in zip(titles, bodies, strict=True)]
    return [(_str(t), _str(b)) for t, b in cases]


def _str(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


class CaseVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF over jieba words of title+body, words of the title alone, and character n-grams of the
    whole text or of the title only (`char_source`).

    Parameters follow sklearn's contract: stored unchanged, validated in `fit`. A block is disabled by
    setting its weight to 0.
    """

    def __init__(
        self,
        *,
        word_ngram_range: tuple[int, int] = (1, 2),
        word_min_df: int = 2,
        word_max_df: float = 1.0,
        word_max_features: int | None = None,
        title_weight: float = 1.0,
        char_weight: float = 1.0,
        char_ngram_range: tuple[int, int] = (2, 4),
        char_min_df: int = 3,
        char_max_features: int | None = 300_000,
        char_source: str = "text",
        body_max_chars: int | None = None,
        sublinear_tf: bool = True,
    ) -> None:
        self.word_ngram_range = word_ngram_range
        self.word_min_df = word_min_df
        self.word_max_df = word_max_df
        self.word_max_features = word_max_features
        self.title_weight = title_weight
        self.char_weight = char_weight
        self.char_ngram_range = char_ngram_range
        self.char_min_df = char_min_df
        self.char_max_features = char_max_features
        self.char_source = char_source
        self.body_max_chars = body_max_chars
        self.sublinear_tf = sublinear_tf

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Models pickled before a parameter existed load with that parameter's default."""
        defaults = {name: p.default for name, p in self._get_param_names_with_defaults().items()}
        super().__setstate__({**defaults, **state})

    @classmethod
    def _get_param_names_with_defaults(cls) -> dict[str, Any]:
        import inspect

        return {
            name: p for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.kind == p.KEYWORD_ONLY
        }

    # -- text preparation -------------------------------------------------------------------------
    def _prepare(self, cases: Any) -> tuple[list[str], list[str], list[str]]:
        """Per case: the text the character block reads, the word tokens, the title tokens."""
        chars, words, titles = [], [], []
        for title, body in as_pairs(cases):
            if self.body_max_chars is not None:
                body = normalise(body)[: self.body_max_chars]
            text = case_text(title, body)
            words.append(TOKEN_SEPARATOR.join(case_tokens(title, body)))
            needs_title = self.title_weight or self.char_source == "title"
            clean_title = mask_personal_data(normalise(title)) if needs_title else ""
            if self.char_weight:
                # An empty title (it happens) falls back to the text, so the block is never blank.
                chars.append(text if self.char_source == "text" else (clean_title or text))
            if self.title_weight:
                titles.append(TOKEN_SEPARATOR.join(tokenise(clean_title)))
        return chars, words, titles

    def _word_vectorizer(self, ngram_range: Sequence[int], min_df: int) -> TfidfVectorizer:
        return TfidfVectorizer(
            tokenizer=split_tokens,
            token_pattern=None,
            lowercase=False,
            ngram_range=tuple(ngram_range),
            min_df=min_df,
            max_df=self.word_max_df,
            max_features=self.word_max_features,
            sublinear_tf=self.sublinear_tf,
            dtype=np.float32,
        )

    # -- sklearn API ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Iterable[Any] | None = None) -> CaseVectorizer:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Iterable[Any] | None = None, **fit_params: Any) -> sp.csr_matrix:
        if self.title_weight < 0 or self.char_weight < 0:
            raise ValueError("title_weight and char_weight must be >= 0")
        if self.char_source not in ("text", "title"):
            raise ValueError(f"char_source must be 'text' or 'title', got {self.char_source!r}")
        chars, words, titles = self._prepare(X)
        if not words:
            raise ValueError("cannot fit CaseVectorizer on zero cases")
        min_df = self.word_min_df if len(words) >= 10 * self.word_min_df else 1
        self.word_vectorizer_ = self._word_vectorizer(self.word_ngram_range, min_df)
        blocks = [self.word_vectorizer_.fit_transform(words)]
        self.title_vectorizer_ = None
        if self.title_weight:
            self.title_vectorizer_ = self._word_vectorizer((1, 1), 1)
            blocks.append(self.title_vectorizer_.fit_transform(titles) * self.title_weight)
        self.char_vectorizer_ = None
        if self.char_weight:
            self.char_vectorizer_ = TfidfVectorizer(
                analyzer="char",
                ngram_range=tuple(self.char_ngram_range),
                min_df=self.char_min_df if len(words) >= 10 * self.char_min_df else 1,
                max_features=self.char_max_features,
                sublinear_tf=self.sublinear_tf,
                lowercase=False,
                dtype=np.float32,
            )
            blocks.append(self.char_vectorizer_.fit_transform(chars) * self.char_weight)
        self.n_features_out_ = sum(b.shape[1] for b in blocks)
        return sp.hstack(blocks, format="csr")

    def transform(self, X: Any) -> sp.csr_matrix:
        check_is_fitted(self, "word_vectorizer_")
        chars, words, titles = self._prepare(X)
        blocks = [self.word_vectorizer_.transform(words)]
        if self.title_vectorizer_ is not None:
            blocks.append(self.title_vectorizer_.transform(titles) * self.title_weight)
        if self.char_vectorizer_ is not None:
            blocks.append(self.char_vectorizer_.transform(chars) * self.char_weight)
        return sp.hstack(blocks, format="csr")
