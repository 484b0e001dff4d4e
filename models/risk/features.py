"""The risk model's features of a case: cues, categories, router probabilities, text statistics, bursts.

Every function reads `PreparedCase`s (`features.prepared`): a case is normalised and tokenised once,
wherever it is scored. Nothing about the reporter is read (the rubric: a level describes the case).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features import risk_cues
from features.prepared import PreparedCase, as_pairs, prepared_cases
from features.risk_cues import FEATURE_NAMES, LEVELS, CueMatch, Lexicon, load_lexicon, rule_risk_level
from features.text import case_text, tokenise
from models.risk.params import LEVEL_ORDER
from models.risk.text_score import text_doc

#: Columns of the input frame carrying the hot-issue detector's statistics at intake, in feature order.
BURST_COLUMNS: tuple[str, ...] = ("burst_cases", "burst_reporters", "burst_recent_cases", "burst_growth", "burst_votes")
#: Feature names of the burst columns (``burst_reporters`` counts people in a burst, not a person).
BURST_FEATURES: tuple[str, ...] = ("burst_cases", "burst_people", "burst_recent_cases", "burst_growth", "burst_votes")
TEXT_STAT_FEATURES: tuple[str, ...] = (
    "title_chars", "body_chars", "body_empty", "digit_count", "number_count", "money_mentions", "sentence_count",
)
#: The stacked text score (`TextScorer`): P(level) of a TF-IDF + logistic-regression model of the words.
TEXT_SCORE_PREFIX = "text_p:"
TEXT_SCORE_FEATURES: tuple[str, ...] = tuple(f"{TEXT_SCORE_PREFIX}{lvl}" for lvl in LEVELS)
#: The stacked P(criterion) of the text model's criterion head (``text_c:red-2`` ...).
TEXT_CRITERION_PREFIX = "text_c:"
DEPT_PREFIX = "dept_p:"
CATEGORY_PREFIX = "cue_cat:"

_NUMBER_RUN = re.compile(r"\d+(?:\.\d+)?")
# A number starts only where its run starts (lookbehinds), and no two optional blanks sit side by side:
# started inside a 20,000-digit run at every position, the pattern was quadratic (70 s, holding the GIL).
_MONEY = re.compile(
    r"(?:(?<!\d)\d+(?:\.\d+)?|(?<![零〇一二两三四五六七八九十百千万])[零〇一二两三四五六七八九十百千万]+)"
    r"\s*(?:[多余]\s*)?(?:[万千百亿]\s*)?(?:元|块钱)"
)
_SENTENCE_END = re.compile(r"[。!！?？;；]+")
#: Every `_MONEY` match ends in one of these. Most texts hold neither, and the pattern is otherwise tried at
#: every position: two thirds of `_text_stats` (34 of 51 us a case on TipDM messages).
_MONEY_UNITS = ("元", "块钱")


_CATEGORY_CACHE: dict[tuple[str, str, int], list[str]] = {}


def _category_names(lexicon: Lexicon) -> list[str]:
    """Lexicon categories in lexicon order, then ``people_count``; cached per loaded lexicon."""
    key = (lexicon.source, lexicon.version, id(lexicon))
    cached = _CATEGORY_CACHE.get(key)
    if cached is not None:
        return cached
    names: list[str] = []
    for categories in lexicon.categories.values():
        for category in categories:
            if category not in names:
                names.append(category)
    names.append(risk_cues.PEOPLE_COUNT_CATEGORY)
    _CATEGORY_CACHE[key] = names
    return names


def _cue_block(text: str, lexicon: Lexicon) -> tuple[dict[str, float], list[CueMatch]]:
    """`cue_features(text)` and `match_cues(text)` from one pass of the matcher.

    Matching is most of the cost of a single prediction, so the matches are computed once and both
    results are derived from them with the same helpers `cue_features` uses (tests assert equality).
    """
    matches, counts = risk_cues._all_matches(text, lexicon)
    level, _ = risk_cues._rule(matches, counts, lexicon)
    per_criterion = dict.fromkeys(risk_cues.CRITERIA, 0)
    for m in matches:
        per_criterion[m.criterion] += 1
    biggest = max((c.count for c in counts), default=0)
    feats = {f"cue_{c.replace('-', '_')}": float(n) for c, n in per_criterion.items()}
    feats.update(
        rule_level=risk_cues._LEVEL_SCORE[level],
        people_max_log1p=math.log1p(biggest),
        has_many_people=float(biggest >= risk_cues.MANY_PEOPLE_THRESHOLD),
        exclamation_count=float(text.count("!") + text.count("！")),
        question_count=float(text.count("?") + text.count("？")),
        text_len_log1p=math.log1p(len(text)),
    )
    return feats, matches


def _text_stats(case: PreparedCase) -> list[float]:
    text = case.text
    # Each digit lies in exactly one number run, and a run holds at most one dot: digits counted from the runs.
    runs = _NUMBER_RUN.findall(text)
    digits = sum(map(len, runs)) - sum(["." in run for run in runs])
    money = len(_MONEY.findall(text)) if any(unit in text for unit in _MONEY_UNITS) else 0
    return [
        float(len(case.title)),
        float(len(case.body)),
        float(not case.body),
        float(digits),
        float(len(runs)),
        float(money),
        float(len(_SENTENCE_END.findall(text))),
    ]


def _feature_names(categories: Sequence[str], dept_classes: Sequence[str]) -> list[str]:
    return [
        *FEATURE_NAMES,
        *(f"{CATEGORY_PREFIX}{c}" for c in categories),
        *(f"{DEPT_PREFIX}{d}" for d in dept_classes),
        *TEXT_STAT_FEATURES,
        *BURST_FEATURES,
    ]


def burst_matrix(cases: Any, n: int) -> np.ndarray:
    """The `BURST_COLUMNS` of a frame as numbers (0 where absent, missing or not finite); zeros for pairs."""
    out = np.zeros((n, len(BURST_COLUMNS)), dtype=np.float64)
    if isinstance(cases, pd.DataFrame):
        for j, col in enumerate(BURST_COLUMNS):
            if col in cases.columns:
                values = pd.to_numeric(cases[col], errors="coerce").to_numpy(dtype=np.float64)
                out[:, j] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def _burst_row(burst: Mapping[str, Any] | None) -> list[float]:
    if not burst:
        return [0.0] * len(BURST_COLUMNS)
    out = []
    for col in BURST_COLUMNS:
        value = burst.get(col)
        try:
            number = float(value) if value is not None else 0.0
        except (TypeError, ValueError):
            number = 0.0
        out.append(number if math.isfinite(number) else 0.0)
    return out


def _router_block(
    router_proba: np.ndarray | None, router_classes: Sequence[str] | None, dept_classes: Sequence[str], n: int
) -> np.ndarray:
    """Router probabilities in the order of ``dept_classes``; zeros without a router or for unknown classes."""
    out = np.zeros((n, len(dept_classes)), dtype=np.float64)
    if router_proba is None or not dept_classes:
        return out
    proba = np.asarray(router_proba, dtype=np.float64)
    if proba.ndim == 1:
        proba = proba[None, :]
    if proba.shape[0] != n:
        raise ValueError(f"router_proba has {proba.shape[0]} rows for {n} cases")
    if router_classes is None:
        raise ValueError("router_classes must name the columns of router_proba")
    router_classes = [str(c) for c in router_classes]
    if proba.shape[1] != len(router_classes):
        raise ValueError(f"router_proba has {proba.shape[1]} columns but {len(router_classes)} router_classes")
    index = {c: i for i, c in enumerate(router_classes)}
    for j, dept in enumerate(dept_classes):
        if dept in index:
            out[:, j] = proba[:, index[dept]]
    return out


def _case_columns(
    case: PreparedCase, lexicon: Lexicon, cat_index: Mapping[str, int]
) -> tuple[list[float], list[float], list[CueMatch]]:
    """One case's cue and category columns, its text statistics, and its cue matches: the single place a
    case's own features are computed, for training, batch and the one-case hot path alike."""
    feats, matches = _cue_block(case.text, lexicon)
    categories = [0.0] * len(cat_index)
    for m in matches:
        categories[cat_index[m.category]] += 1.0
    return [*(feats[k] for k in FEATURE_NAMES), *categories], _text_stats(case), matches


def _features_with_matches(
    cases: Any,
    router_proba: np.ndarray | None,
    router_classes: Sequence[str] | None,
    dept_classes: Sequence[str] | None = None,
    bursts: Sequence[Mapping[str, Any] | None] | None = None,
) -> tuple[np.ndarray, list[str], list[PreparedCase], list[list[CueMatch]]]:
    """The feature matrix, its column names, the prepared cases and their cue matches.

    ``cases``: prepared cases, (title, body) pairs or a DataFrame; burst statistics come from ``bursts``
    (one mapping of `BURST_COLUMNS` per case, None for none) or else from the frame's columns.
    """
    lexicon = load_lexicon()
    categories = _category_names(lexicon)
    if dept_classes is None:
        dept_classes = [str(c) for c in router_classes] if router_classes is not None else []
    prepared = prepared_cases(cases)
    n = len(prepared)
    names = _feature_names(categories, dept_classes)
    cat_index = {c: i for i, c in enumerate(categories)}
    n_own = len(FEATURE_NAMES) + len(categories)
    start = n_own + len(dept_classes)
    X = np.zeros((n, len(names)), dtype=np.float64)
    all_matches = []
    for i, case in enumerate(prepared):
        own, stats, matches = _case_columns(case, lexicon, cat_index)
        X[i, :n_own] = own
        X[i, start:start + len(TEXT_STAT_FEATURES)] = stats
        all_matches.append(matches)
    X[:, n_own:start] = _router_block(router_proba, router_classes, dept_classes, n)
    if bursts is not None:
        if len(bursts) != n:
            raise ValueError(f"{len(bursts)} burst rows for {n} cases")
        X[:, -len(BURST_FEATURES):] = [_burst_row(b) for b in bursts] if n else 0.0
    else:
        X[:, -len(BURST_FEATURES):] = burst_matrix(cases, n)
    return X.astype(np.float32), names, prepared, all_matches


def risk_features(
    cases: Any, router_proba: np.ndarray | None = None, router_classes: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """The risk model's feature matrix (float32) and its column names, for a DataFrame with title / body.

    Columns: `features.risk_cues.FEATURE_NAMES`; ``cue_cat:<category>`` per lexicon category; ``dept_p:<name>``
    per entry of ``router_classes`` (zeros when ``router_proba`` is None); `TEXT_STAT_FEATURES`;
    `BURST_FEATURES` from the frame's `BURST_COLUMNS` (zeros where absent or missing). Row-wise and
    stateless: a case's features never depend on other cases. Nothing about the reporter is read.
    """
    X, names, _, _ = _features_with_matches(cases, router_proba, router_classes)
    return X, names


def _doc(text: str | PreparedCase) -> str:
    """The text model's document: a case's words (`PreparedCase.tokens`, or `tokenise` of a plain
    ``case_text``) and the text itself, for character n-grams."""
    if isinstance(text, PreparedCase):
        return text_doc(text.tokens, text.text)
    return text_doc(tokenise(text), text)


def _docs(texts: Sequence[str | PreparedCase]) -> list[str]:
    return [_doc(t) for t in texts]


def _plain(texts: Sequence[str | PreparedCase]) -> list[str]:
    return [t.text if isinstance(t, PreparedCase) else t for t in texts]


def criterion_column(cases: Any) -> list[str | None] | None:
    """The annotated rubric criterion of each row (column ``criterion``: red-1 ... yellow-4 or green), None
    where absent or not a criterion of the rubric; None without the column."""
    if not isinstance(cases, pd.DataFrame) or "criterion" not in cases.columns:
        return None
    known = set(risk_cues.CRITERIA) | {"green"}
    return [str(v).strip().lower() if isinstance(v, str) and v.strip().lower() in known else None
            for v in cases["criterion"]]


def weak_labels(cases: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, is_weak)``: the ``risk_level`` column where set, else the cue rules' level (flagged weak)."""
    pairs = as_pairs(cases)
    given = cases["risk_level"].tolist() if "risk_level" in cases.columns else [None] * len(pairs)
    labels = np.empty(len(pairs), dtype=object)
    is_weak = np.zeros(len(pairs), dtype=bool)
    for i, (value, (title, body)) in enumerate(zip(given, pairs, strict=True)):
        missing = value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""
        if missing:
            labels[i] = rule_risk_level(case_text(title, body))[0]
            is_weak[i] = True
        else:
            level = str(value).strip().lower()
            if level not in LEVEL_ORDER:
                raise ValueError(f"row {i}: unknown risk level {level[:20]!r} (expected red, yellow or green)")
            labels[i] = level
    return labels, is_weak

