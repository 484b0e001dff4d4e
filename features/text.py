"""Normalisation and tokenisation shared by training and serving.

Both sides must see identical text, so every feature starts from `normalise` and `tokenise` here.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

from features import tokenizer

logger = logging.getLogger(__name__)

#: Bumped whenever the user dictionary, stop words or normalisation rules change, so a model records
#: which text pipeline it was trained with.
TEXT_PIPELINE_VERSION = "1"

_WHITESPACE = re.compile(r"\s+")
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
# C0/C1 controls other than whitespace; whitespace controls are folded by _WHITESPACE below.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Each pattern opens with a lookahead on the characters it can start with: most positions are turned away
# by that one test instead of the lookbehind and what follows (half the masking time on TipDM messages).
_PHONE = re.compile(r"(?=[+81])(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")
_LANDLINE = re.compile(r"(?=[(0])(?<!\d)(?:\(0\d{2,3}\)|0\d{2,3})[- ]?\d{7,8}(?!\d)")
_ID_CARD = re.compile(r"(?=\d)(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
# An address starts where its run of address characters starts (the lookbehind), and every part is
# bounded, so a long run of letters is read once (the linear-time sweep in tests/fuzz checks it).
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}(?![A-Za-z0-9-])"
)
_TOKEN_KEEP = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)

def normalise(text: str | None) -> str:
    """Canonical form of a grievance text.

    NFKC folds full-width letters, digits and punctuation to their ASCII forms (so "１２３４５" and
    "12345" are one token); whitespace runs such as the ``\\n\\t\\t`` padding of exported bodies
    collapse to one space; invisible characters are dropped and control characters become a space.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", str(text))
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def mask_personal_data(text: str) -> str:
    """Replace phone and ID-card numbers by placeholders.

    Used for model input (a phone number says nothing about the department) and anywhere text might
    reach a log.
    """
    text = _ID_CARD.sub("<身份证号>", text)
    text = _PHONE.sub("<电话>", text)
    return _LANDLINE.sub("<电话>", text)


def mask_contact_details(text: str) -> str:
    """`mask_personal_data` and e-mail addresses: what a reviewer or an export is shown of a case's text.

    The reviewer judges the case, not the person; the ticket system keeps how to reach them. E-mail is
    masked here and not in the model's input, whose text pipeline is versioned with the models.
    """
    return _EMAIL.sub("<邮箱>", mask_personal_data(text)) if text else text


def case_text(title: str | None, body: str | None) -> str:
    """The text a model reads for one case: normalised title, then body, personal numbers masked.

    An empty body is common in exported petitions; the title alone then carries the case.
    """
    title_n, body_n = normalise(title), normalise(body)
    joined = f"{title_n}。{body_n}" if title_n and body_n else (title_n or body_n)
    return mask_personal_data(joined)


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    return frozenset(tokenizer.data_lines("stop_words.txt"))


def init_tokenizer() -> None:
    """Load the word segmenter's dictionaries now, so the first request does not pay for it."""
    tokenizer.segmenter()


def tokenise(text: str) -> list[str]:
    """Word tokens of an already normalised text, without punctuation, spaces or stop words.

    A module-level function (not a lambda) so vectorizers that use it pickle. Recent texts are cached:
    serving tokenises one case's text in more than one component (router, risk model), and jieba is
    most of a case's cost.
    """
    return list(_tokenise_cached(text))


def case_tokens(title: str | None, body: str | None) -> list[str]:
    """``tokenise(case_text(title, body))``, computed per part.

    jieba never joins words across the "。" that `case_text` puts between title and body, so the tokens
    are the same; tokenising the parts lets the router, the risk model and the hot-issue detector (which
    reads title and body apart) share one cached tokenisation of each.
    """
    return tokenise(case_text(title, "")) + tokenise(case_text("", body))


# Holds a batch chunk's titles and bodies (training.predict.CHUNK cases), so the risk model reuses the
# router's tokens; a few MB.
@lru_cache(maxsize=4096)
def _tokenise_cached(text: str) -> tuple[str, ...]:
    return tuple(filter(_kept().__getitem__, tokenizer.segmenter()(text)))


class _KeptTokens(dict[str, bool]):
    """Whether a token is kept (no stop word, not only punctuation or spaces), decided once per distinct
    token: a batch segments into millions of tokens, of ~100k distinct ones."""

    MAX = 1 << 18  # entries; dropped whole when full

    def __init__(self, stops: frozenset[str]) -> None:
        super().__init__()
        self.stops = stops

    def __missing__(self, token: str) -> bool:
        kept = token not in self.stops and _TOKEN_KEEP.search(token) is not None
        if len(self) >= self.MAX:
            self.clear()
        self[token] = kept
        return kept


@lru_cache(maxsize=1)
def _kept() -> _KeptTokens:
    return _KeptTokens(stop_words())


# Tokens cached under one segmenter are not the other's.
tokenizer.on_change(_tokenise_cached.cache_clear)
