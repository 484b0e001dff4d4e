"""A case's text made ready once: normalised, masked and tokenised, then read by every model.

The router, the risk model (cues, text score, statistics) and the hot-issue detector all start from the
same title and body. Each used to normalise and tokenise them itself (``unicodedata.normalize`` ran 14
times per case, jieba twice or three times); a `PreparedCase` holds what they share, so a case costs one
normalisation and one tokenisation of each part wherever it is scored.

Every field equals what the older per-component helpers of `features.text` give (tests assert it):
``text == case_text(title, body)`` and ``tokens == case_tokens(title, body)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.text import mask_personal_data, normalise, tokenise

#: Between title and body in `PreparedCase.text`; jieba never joins words across it.
TITLE_BODY_SEPARATOR = "。"
#: Where the hot-issue detector stops reading a body by default (`models.hotspots.HotspotConfig.body_max_chars`).
BODY_HEAD_CHARS = 300
#: Characters no word segmenter here puts inside a word: jieba and rjieba cut a text into blocks of
#: CJK characters, letters, digits and ``+#&._%-`` and segment each block alone, so the words of a text are
#: the words before one of these followed by the words from it on (`tests/fuzz/test_fast_paths.py`).
WORD_BOUNDARIES = frozenset(",。!?;:、 ")


@dataclass(frozen=True, slots=True)
class PreparedCase:
    """One case's text as every model reads it. Build it with `prepare`."""

    #: Normalised title and body (`features.text.normalise`), personal numbers not yet masked.
    title: str
    body: str
    #: The same with phone and ID-card numbers masked: what models read (`mask_personal_data`).
    title_masked: str
    body_masked: str
    #: Word tokens of the masked title and body (`features.text.tokenise`).
    title_tokens: tuple[str, ...]
    body_tokens: tuple[str, ...]
    #: A body longer than `BODY_HEAD_CHARS` is segmented in two at its last `WORD_BOUNDARIES` character
    #: before that (the same words): where (-1: not split), and how many of `body_tokens` come before it.
    #: The detector, which reads only the head, then segments the few characters after that point only.
    body_split: int = -1
    body_head_tokens: int = 0

    @property
    def text(self) -> str:
        """``case_text(title, body)``: the string cue offsets index into."""
        if self.title_masked and self.body_masked:
            return f"{self.title_masked}{TITLE_BODY_SEPARATOR}{self.body_masked}"
        return self.title_masked or self.body_masked

    @property
    def tokens(self) -> tuple[str, ...]:
        """``case_tokens(title, body)``: the words of the title, then of the body."""
        return self.title_tokens + self.body_tokens

    def head_tokens(self, head: str) -> tuple[str, ...]:
        """``tokenise(head)`` for ``head``, a beginning of this body normalised and masked by itself: the
        words before `body_split` are taken from `body_tokens` when ``head`` agrees with the body up to and
        including that point (masking a cut number can make them differ), and only the rest is segmented."""
        at = self.body_split
        if 0 < at < len(head) and head[: at + 1] == self.body_masked[: at + 1]:
            return self.body_tokens[: self.body_head_tokens] + tuple(tokenise(head[at:]))
        return tuple(tokenise(head))


def prepare(title: Any, body: Any) -> PreparedCase:
    """Normalise, mask and tokenise one case (None and NaN read as empty)."""
    title_n, body_n = normalise(_text(title)), normalise(_text(body))
    # Masking never reaches across the separator (its patterns need digits on both sides), so the
    # parts can be masked apart and joined.
    title_m, body_m = mask_personal_data(title_n), mask_personal_data(body_n)
    at = _head_split(body_m)
    if at < 0:
        return PreparedCase(title_n, body_n, title_m, body_m, tuple(tokenise(title_m)), tuple(tokenise(body_m)))
    head = tokenise(body_m[:at])
    return PreparedCase(title_n, body_n, title_m, body_m, tuple(tokenise(title_m)),
                        (*head, *tokenise(body_m[at:])), at, len(head))


def _head_split(body: str) -> int:
    """The last word boundary before `BODY_HEAD_CHARS` of a longer body; -1 for none (or a short body)."""
    if len(body) <= BODY_HEAD_CHARS:
        return -1
    for at in range(BODY_HEAD_CHARS - 1, 0, -1):
        if body[at] in WORD_BOUNDARIES:
            return at
    return -1


def prepare_all(pairs: Iterable[tuple[Any, Any]]) -> list[PreparedCase]:
    return [prepare(title, body) for title, body in pairs]


def prepared_cases(cases: Any) -> list[PreparedCase]:
    """`PreparedCase`s of a DataFrame with title / body, of (title, body) pairs, or of prepared cases."""
    if isinstance(cases, Sequence) and cases and all(isinstance(c, PreparedCase) for c in cases):
        return list(cases)
    return prepare_all(as_pairs(cases))


def as_pairs(cases: Any) -> list[tuple[str, str]]:
    """Accept a DataFrame with title/body columns or a sequence of (title, body) pairs."""
    if isinstance(cases, pd.DataFrame):
        missing = {"title", "body"} - set(cases.columns)
        if missing:
            raise ValueError(f"input is missing column(s) {sorted(missing)}; expected 'title' and 'body'")
        titles = cases["title"].tolist()
        bodies = cases["body"].tolist()
        return [(_text(t), _text(b)) for t, b in zip(titles, bodies, strict=True)]
    return [(_text(t), _text(b)) for t, b in cases]


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):  # NaN from pandas
        return ""
    return str(value)
