"""`CaseVectorizer`: one sklearn transformer from (title, body) to the sparse features the router reads.

It owns the word, title and character TF-IDF vectorizers so that each case is normalised and tokenised
exactly once per call, and so a single case goes through without pandas or ColumnTransformer overhead
(the serving hot path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from features.prepared import PreparedCase, as_pairs, prepare, prepared_cases
from features.tfidf_rows import FittedTfidf, stack_rows

TOKEN_SEPARATOR = " "

__all__ = ["TOKEN_SEPARATOR", "CaseVectorizer", "FeatureParams", "as_pairs", "split_tokens"]


def split_tokens(doc: str) -> list[str]:
    """Tokenizer for already tokenised, space-joined text (module level so fitted vectorizers pickle)."""
    return doc.split(TOKEN_SEPARATOR) if doc else []


class FeatureParams(BaseModel):
    """Arguments of `CaseVectorizer`, as the training config (`features:`) gives them; the one source of
    their defaults: `CaseVectorizer()` is the shipped recipe."""

    model_config = ConfigDict(extra="forbid")

    word_ngram_range: tuple[int, int] = (1, 2)
    word_min_df: int = Field(2, ge=1)
    word_max_df: float = Field(1.0, gt=0, le=1)
    word_max_features: int | None = Field(None, ge=1)
    title_weight: float = Field(0.0, ge=0)
    char_weight: float = Field(0.7, ge=0)
    char_ngram_range: tuple[int, int] = (1, 4)
    char_min_df: int = Field(1, ge=1)
    char_max_features: int | None = Field(300_000, ge=1)
    char_source: Literal["text", "title"] = "title"
    body_max_chars: int | None = Field(None, ge=1)
    sublinear_tf: bool = True


_DEFAULTS = FeatureParams()


class CaseVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF over jieba words of title+body, words of the title alone, and character n-grams of the
    whole text or of the title only (`char_source`).

    Parameters follow sklearn's contract: stored unchanged, validated in `fit`. A block is disabled by
    setting its weight to 0.
    """

    def __init__(
        self,
        *,
        word_ngram_range: tuple[int, int] = _DEFAULTS.word_ngram_range,
        word_min_df: int = _DEFAULTS.word_min_df,
        word_max_df: float = _DEFAULTS.word_max_df,
        word_max_features: int | None = _DEFAULTS.word_max_features,
        title_weight: float = _DEFAULTS.title_weight,
        char_weight: float = _DEFAULTS.char_weight,
        char_ngram_range: tuple[int, int] = _DEFAULTS.char_ngram_range,
        char_min_df: int = _DEFAULTS.char_min_df,
        char_max_features: int | None = _DEFAULTS.char_max_features,
        char_source: str = _DEFAULTS.char_source,
        body_max_chars: int | None = _DEFAULTS.body_max_chars,
        sublinear_tf: bool = _DEFAULTS.sublinear_tf,
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

    def __sklearn_tags__(self) -> Tags:
        """Cases of text in, not a numeric matrix."""
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    # -- text preparation -------------------------------------------------------------------------
    def _cases(self, cases: Any) -> list[PreparedCase]:
        """The cases as `PreparedCase`s (given so, or prepared here), bodies cut at `body_max_chars`."""
        prepared = prepared_cases(cases)
        n = self.body_max_chars
        if n is not None:
            prepared = [c if len(c.body) <= n else prepare(c.title, c.body[:n]) for c in prepared]
        return prepared

    def _documents(self, cases: Any) -> tuple[list[str], list[str], list[str]]:
        """Per case: the text the character block reads, the word tokens, the title tokens."""
        chars, words, titles = [], [], []
        for case in self._cases(cases):
            words.append(TOKEN_SEPARATOR.join(case.tokens))
            if self.char_weight:
                # An empty title (it happens) falls back to the text, so the block is never blank.
                chars.append(case.text if self.char_source == "text" else (case.title_masked or case.text))
            if self.title_weight:
                titles.append(TOKEN_SEPARATOR.join(case.title_tokens))
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
        self.__dict__.pop("_fitted_rows", None)
        chars, words, titles = self._documents(X)
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
        """The fitted blocks' TF-IDF rows, weighted and side by side.

        Computed straight from the fitted vocabularies (`features.tfidf_rows`): the numbers sklearn's
        ``transform`` gives (tests compare them), without its per-call overhead, which was most of the
        cost of routing one case.
        """
        check_is_fitted(self, "word_vectorizer_")
        chars, words, titles = self._documents(X)
        blocks = [(self._fitted("word_vectorizer_"), 1.0, words)]
        if self.title_vectorizer_ is not None:
            blocks.append((self._fitted("title_vectorizer_"), self.title_weight, titles))
        if self.char_vectorizer_ is not None:
            blocks.append((self._fitted("char_vectorizer_"), self.char_weight, chars))
        return stack_rows(blocks, len(words))

    def _fitted(self, name: str) -> FittedTfidf:
        """The block's vocabulary and idf in the form `stack_rows` reads, taken once per loaded model."""
        cache = self.__dict__.setdefault("_fitted_rows", {})
        if name not in cache:  # the word blocks' tokenizer is `split_tokens`: no token holds a space
            cache[name] = FittedTfidf.of(getattr(self, name), split_on_spaces=name != "char_vectorizer_")
        return cache[name]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the live __dict__
        state.pop("_fitted_rows", None)
        return state
