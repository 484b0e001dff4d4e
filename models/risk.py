"""The risk model: red / yellow / green for one case, with probabilities and reasons a reviewer can check.

A LightGBM classifier reads four blocks of features of a case (`risk_features`):

- **cue features** of ``case_text(title, body)``: the per-criterion counts and rule level of
  `features.risk_cues.cue_features`, plus one count per lexicon category (``cue_cat:gas_leak`` ...);
- **router probabilities**, one column per department (``dept_p:城乡建设`` ...), zeros without a router;
- **text statistics**: lengths, digits, numbers, amounts of money, sentences;
- **a stacked text model** (``text_p:red`` ..., ``text_c:red-1`` ...; `RiskParams.text_score`): P(level)
  and P(each red criterion) of a TF-IDF (word 1-2-grams, character 2-3-grams) + logistic-regression model
  learnt from the real labels (`models.risk_text.TextScorer`), out of fold on the training rows;
- **burst statistics at intake** from the hot-issue detector replayed in time order (columns
  ``burst_cases, burst_reporters, burst_recent_cases, burst_growth, burst_votes`` of the input frame;
  zeros where absent). ``burst_reporters`` (how many *different* people reported the burst) becomes the
  feature ``burst_people``.

No feature describes the writer: the reporter id and anything about a reporter's history are never read
(the rubric: a level describes the case, never the person).

Labels (`weak_labels`): a row's ``risk_level`` where it has one (reviewed or annotated), else the cue rules'
level (`features.risk_cues.rule_risk_level`), flagged weak and trained with a smaller sample weight
(`RiskParams.weak_label_weight`), and only while real labels are fewer than `RiskParams.weak_until_real`.

Decision bands (`choose_bands`) turn probabilities into a level::

    red     if P(red) >= t_red
    yellow  elif P(red) + P(yellow) >= t_yellow
    green   otherwise

``t_red`` is, among thresholds whose red recall on held-out predictions reaches
`RiskParams.red_recall_target` (default 0.95), the one with the best F2, raised if needed to keep red
precision at `RiskParams.red_precision_floor`; ``t_yellow`` likewise for "at least yellow" recall and
`RiskParams.yellow_recall_target` (default 0.92), choosing by the mean F1 of "at least yellow" and
green. `RiskModel.fit` chooses them on out-of-fold predictions of the rows with real (non-weak) labels,
never on predictions for rows the model trained on. A case whose cue rules say red is never green (at
least yellow, with a "rule" reason): a safety floor for dangers the model has seen too few examples of
(`RiskParams.red_cue_floor`).

Reasons (`Reason`): for a red or yellow case, first the rubric criterion it meets with the phrases that show
it (the lexicon's matches, or the text model's strongest phrases where the lexicon has none), then the
safety floor if it acted, every other matched cue phrase with its offsets into ``case_text(title, body)``,
and the top LightGBM ``pred_contrib`` contributions toward the level, named in Chinese (`feature_text`);
for red and yellow only features about the situation (`situational_feature`), never the message's form.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import lightgbm
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from features import risk_cues
from features.prepared import PreparedCase, as_pairs, prepare, prepared_cases
from features.risk_cues import FEATURE_NAMES, LEVELS, CueMatch, Lexicon, load_lexicon, rule_risk_level
from features.text import TEXT_PIPELINE_VERSION, case_text, tokenise
from models.risk_text import TextScorer, text_doc, text_oof

logger = logging.getLogger(__name__)

__all__ = [
    "BURST_COLUMNS",
    "LEVELS",
    "LEVEL_ORDER",
    "TEXT_SCORE_FEATURES",
    "BoosterFitter",
    "Reason",
    "RiskModel",
    "RiskParams",
    "RiskResult",
    "TextScorer",
    "choose_bands",
    "feature_text",
    "fit_booster_locally",
    "levels_from_proba",
    "risk_features",
    "weak_labels",
]

#: Severity order of the levels: a higher number is more urgent.
LEVEL_ORDER: dict[str, int] = {"green": 0, "yellow": 1, "red": 2}
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

_DIGIT = re.compile(r"\d")
_NUMBER_RUN = re.compile(r"\d+(?:\.\d+)?")
# A number starts only where its run starts (lookbehinds), and no two optional blanks sit side by side:
# started inside a 20,000-digit run at every position, the pattern was quadratic (70 s, holding the GIL).
_MONEY = re.compile(
    r"(?:(?<!\d)\d+(?:\.\d+)?|(?<![零〇一二两三四五六七八九十百千万])[零〇一二两三四五六七八九十百千万]+)"
    r"\s*(?:[多余]\s*)?(?:[万千百亿]\s*)?(?:元|块钱)"
)
_SENTENCE_END = re.compile(r"[。!！?？;；]+")


# ---------------------------------------------------------------------------------------------------
# Parameters and result types
# ---------------------------------------------------------------------------------------------------


class RiskParams(BaseModel):
    """Hyper-parameters of the risk model and its decision bands (the seed comes from the caller)."""

    model_config = ConfigDict(extra="forbid")

    # Small trees: pred_contrib (TreeSHAP) costs about leaves x depth^2 per tree and runs on every
    # single-case prediction for the reasons. Depth 3 halves its cost against 15 leaves unbounded, with the
    # same cross-validated figures (experiments/results/risk.json).
    num_leaves: int = Field(7, ge=2, le=255)
    max_depth: int = Field(3, ge=-1, le=32)
    n_estimators: int = Field(200, ge=1, le=5000)
    learning_rate: float = Field(0.05, gt=0, le=1)
    min_child_samples: int = Field(10, ge=1)
    reg_lambda: float = Field(1.0, ge=0)
    reg_alpha: float = Field(0.0, ge=0)
    colsample_bytree: float = Field(1.0, gt=0, le=1)
    class_weight: Literal["balanced"] | None = "balanced"
    #: Training threads. Prediction of fewer than 64 rows always uses one thread.
    n_jobs: int = Field(1, ge=1, le=64)
    #: Processes fitting the text model's fold scorers and its final one (the same scores as one process,
    #: to the order of floating-point sums); with 11,600 labels, one process took most of a 20-minute run.
    text_jobs: int = Field(2, ge=1, le=64)
    #: Sample weight of a weak (cue-rule) label relative to a reviewed / annotated one (1.0).
    weak_label_weight: float = Field(0.3, gt=0, le=1)
    #: Weak rows train the model only while real labels are fewer than this (0: always). With 1,900 real
    #: labels they made it worse on annotated cases nobody read (red average precision 0.54 with them at
    #: weight 0.3, 0.56 at 0.1, 0.61 without; experiments/bench_risk.py --tune): the cue rules' guesses
    #: teach the model the lexicon's mistakes.
    weak_until_real: int = Field(500, ge=0)
    #: Red recall the red band must reach on held-out predictions.
    red_recall_target: float = Field(0.95, gt=0, le=1)
    #: Red precision the red band keeps on held-out predictions even when that costs red recall: a few red
    #: cases that look green to the features would otherwise pull the band so low that most reds are
    #: false alarms, and reviewers learn to ignore red. Below the target, the band report says so.
    red_precision_floor: float = Field(0.6, ge=0, lt=1)
    #: Safety floor: a case the cue rules call red (danger to life, public health, many losing money,
    #: collective conflict) is at least yellow whatever the model says, so a reviewer sees it soon.
    red_cue_floor: bool = True
    #: "At least yellow" (red or yellow) recall the yellow band must reach on held-out predictions. Above
    #: the 0.90 the product promises, for the margin that out-of-fold figures lose on new cases.
    yellow_recall_target: float = Field(0.92, gt=0, le=1)
    #: Folds of the out-of-fold predictions that choose the bands.
    band_folds: int = Field(5, ge=2, le=20)
    #: Real labels needed per level (red, yellow) to choose bands on them; below it, bands are chosen on
    #: out-of-fold predictions of all rows against their (mostly weak) labels, and `band_report_` says so.
    min_real_per_level: int = Field(10, ge=2)
    #: Most model contributions listed as reasons.
    max_model_reasons: int = Field(4, ge=0, le=20)
    #: Stack a text score: TF-IDF (jieba words, 1-2 grams) + logistic regression over red / yellow / green,
    #: out-of-fold on the training rows, as the features `TEXT_SCORE_FEATURES`.
    text_score: bool = True
    #: Inverse regularisation strength of the text score's logistic regression.
    text_C: float = Field(4.0, gt=0)
    #: Folds of the text score's out-of-fold probabilities on the training rows.
    text_folds: int = Field(5, ge=2, le=20)
    #: Also stack the text model's P(criterion) of each red criterion with at least `text_folds` real
    #: examples (``text_c:red-1`` ...): red is four different situations, which one level score blurs.
    text_criterion_features: bool = True
    #: Learn the text score from real (annotated or reviewed) labels only, when every level has at least
    #: `min_real_per_level` of them: trained on the cue rules' weak labels it only learns the lexicon back.
    text_real_only: bool = True

    def lgbm_params(self, seed: int) -> dict[str, Any]:
        return {
            "objective": "multiclass",
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "reg_lambda": self.reg_lambda,
            "reg_alpha": self.reg_alpha,
            "colsample_bytree": self.colsample_bytree,
            "class_weight": self.class_weight,
            "n_jobs": self.n_jobs,
            "random_state": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }


@dataclass(frozen=True)
class Reason:
    """Why a case got its level.

    kind "criterion": the rubric criterion the case meets (``criterion``, e.g. red-2; ``value``: the text
    model's probability of it, None when only the lexicon named it), with its phrases in ``text``; always
    first for a red or yellow case. kind "model": a feature that pushed the model toward the predicted
    level (``feature``, its ``value``, ``weight`` in log-odds, ``text`` in Chinese for the reviewer).
    kind "cue": a phrase found in the text (``criterion``, ``category``, ``text`` = the phrase, ``start``
    / ``end`` offsets into ``case_text(title, body)``; ``category`` is the lexicon's, or "learned" for a
    phrase the text model weighed for the criterion). kind "rule": the safety floor lifted a green case to
    yellow (``criterion`` = the red criterion the cue rules found).
    """

    kind: Literal["criterion", "model", "cue", "rule"]
    text: str
    feature: str | None = None
    value: float | None = None
    weight: float | None = None
    criterion: str | None = None
    category: str | None = None
    start: int | None = None
    end: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RiskResult:
    level: str
    probabilities: dict[str, float]
    reasons: list[Reason] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "probabilities": dict(self.probabilities),
            "reasons": [r.to_dict() for r in self.reasons],
        }


# ---------------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------------


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
    return [
        float(len(case.title)),
        float(len(case.body)),
        float(not case.body),
        float(len(_DIGIT.findall(text))),
        float(len(_NUMBER_RUN.findall(text))),
        float(len(_MONEY.findall(text))),
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


def _burst_matrix(cases: Any, n: int) -> np.ndarray:
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
        X[:, -len(BURST_FEATURES):] = _burst_matrix(cases, n)
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


# ---------------------------------------------------------------------------------------------------
# Bands
# ---------------------------------------------------------------------------------------------------


def _recall_threshold(
    scores: np.ndarray, positive: np.ndarray, target: float, objective: Literal["f2", "balanced"] = "f2"
) -> float:
    """Among thresholds whose recall of `positive` rows reaches `target`, the one that scores best.

    The largest such threshold alone sits right at the edge of the held-out scores: when classes separate
    well it is near 1, and a new case scoring a little lower than every training case falls through.
    ``objective`` decides how far below it to go: "f2" (F-beta of the positives, recall weighted four
    times precision: red, where a miss costs most) or "balanced" (the mean F1 of positives and negatives:
    yellow, where the positives are most cases and F2 alone would call nearly every case yellow).
    """
    order = np.argsort(-scores, kind="stable")
    ordered, hits = scores[order], np.cumsum(positive[order])
    n_pos = max(1, int(positive.sum()))
    n_neg = max(1, len(scores) - int(positive.sum()))
    flagged = np.arange(1, len(ordered) + 1)
    recall, precision = hits / n_pos, hits / flagged
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]
    feasible = last_of_tie & (recall >= target - 1e-9)
    if objective == "f2":
        score = 5 * precision * recall / np.maximum(4 * precision + recall, 1e-12)
    else:
        f1_pos = 2 * hits / (flagged + n_pos)
        true_neg = (len(ordered) - flagged) - (n_pos - hits)
        f1_neg = 2 * true_neg / np.maximum((len(ordered) - flagged) + n_neg, 1)
        score = (f1_pos + f1_neg) / 2
    return float(ordered[int(np.argmax(np.where(feasible, score, -1.0)))])


def _precision_floor_threshold(p_red: np.ndarray, red: np.ndarray, start: float, floor: float) -> float:
    """The smallest threshold >= `start` at which red precision on these rows reaches `floor`.

    Keeps `start` when it already does, or when no threshold does (then recall wins: red is for safety).
    """
    order = np.argsort(-p_red, kind="stable")
    scores, hits = p_red[order], np.cumsum(red[order])
    precision = hits / np.arange(1, len(scores) + 1)
    # Precision at threshold scores[i] counts every row tied with it: use the last index of each tie.
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    ok = last_of_tie & (scores >= start) & (precision >= floor)
    if not ok.any() or precision[last_of_tie & (scores >= start)][-1] >= floor:
        return start
    return float(scores[np.flatnonzero(ok)[-1]])


def choose_bands(
    y_true: Sequence[str] | np.ndarray,
    proba: np.ndarray,
    red_recall_target: float = 0.95,
    yellow_recall_target: float = 0.85,
    red_precision_floor: float = 0.0,
) -> dict[str, float]:
    """Decision bands ``{"red": t_red, "yellow": t_yellow}`` from held-out predictions.

    ``proba`` has columns in `LEVELS` order (red, yellow, green) and must come from models that did not
    train on those rows (out-of-fold or held-out), or the bands are far too high.

    - ``t_red``: a threshold on P(red) whose red recall (share of true red rows with P(red) >= t_red) is
      at least ``red_recall_target``: of those, the one with the best F2 (`_recall_threshold`);
    - ``t_yellow``: the same on P(red) + P(yellow) for "at least yellow" rows (true red or yellow) and
      ``yellow_recall_target``, choosing by the mean F1 of "at least yellow" and green.

    If red precision at ``t_red`` is below ``red_precision_floor``, ``t_red`` is raised to the smallest
    threshold whose precision reaches the floor (the most red recall that precision allows).

    Each is a predicted value, so the recall holds with ``>=`` on these rows exactly. Raises ValueError
    when there is no red, or no red-or-yellow, row to measure recall on.
    """
    y = np.asarray(y_true, dtype=object)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(y), len(LEVELS)):
        raise ValueError(f"proba must have shape ({len(y)}, {len(LEVELS)}), got {proba.shape}")
    red = y == "red"
    at_least_yellow = red | (y == "yellow")
    if not red.any():
        raise ValueError("cannot choose the red band: no red case among the held-out labels")
    if not at_least_yellow.any():
        raise ValueError("cannot choose the yellow band: no red or yellow case among the held-out labels")
    t_red = _recall_threshold(proba[:, 0], red, red_recall_target)
    if red_precision_floor > 0:
        t_red = _precision_floor_threshold(proba[:, 0], red, t_red, red_precision_floor)
    t_yellow = _recall_threshold(proba[:, 0] + proba[:, 1], at_least_yellow, yellow_recall_target, "balanced")
    return {"red": t_red, "yellow": min(t_yellow, 1.0)}


def levels_from_proba(proba: np.ndarray, bands: Mapping[str, float]) -> np.ndarray:
    """Levels for probabilities (columns red, yellow, green) under ``bands``; see the module docstring."""
    proba = np.asarray(proba, dtype=np.float64)
    out = np.full(len(proba), "green", dtype=object)
    out[proba[:, 0] + proba[:, 1] >= bands["yellow"]] = "yellow"
    out[proba[:, 0] >= bands["red"]] = "red"
    return out


#: Phrases quoted in a criterion reason.
MAX_CRITERION_PHRASES = 3
#: Category of a cue reason that the text model found, not the lexicon.
LEARNED_CATEGORY = "learned"
#: Features that describe the form of a message, not its situation: never a reason for red or yellow.
FORM_FEATURES: frozenset[str] = frozenset(
    {*TEXT_STAT_FEATURES, "text_len_log1p", "exclamation_count", "question_count", f"{TEXT_SCORE_PREFIX}green"}
)


#: Below this the text model's score reads "unlike ... cases" (`feature_text`): no reason for red or yellow.
SIMILAR_FROM = 0.2


def situational_feature(name: str, value: float) -> bool:
    """Whether a model feature may stand as a reason for red or yellow: present in the case (value > 0; for
    the text model's scores, similar enough to say so), and about the situation (cues, people counts,
    bursts, resemblance to red / yellow cases), not the form of the message nor the department it
    resembles."""
    if name.startswith((TEXT_SCORE_PREFIX, TEXT_CRITERION_PREFIX)) and value < SIMILAR_FROM:
        return False
    return value > 0 and name not in FORM_FEATURES and not name.startswith(DEPT_PREFIX)


RULE_FLOOR_TEXT = "提示词规则判为红色情形（如燃气泄漏、欠薪、聚集），模型把握不足：至少列为黄色，请人工确认"


def _band_report(labels: np.ndarray, oof: np.ndarray, bands: Mapping[str, float], p: RiskParams) -> dict[str, Any]:
    """Targets, the out-of-fold figures the bands reach, and whether the precision floor cost red recall."""
    figures = _band_metrics(labels, levels_from_proba(oof, bands))
    return {
        "red_recall_target": p.red_recall_target,
        "red_precision_floor": p.red_precision_floor,
        "yellow_recall_target": p.yellow_recall_target,
        **{f"oof_{k}": v for k, v in figures.items()},
        "red_limited_by_precision": bool(figures["red_recall"] < p.red_recall_target - 1e-9
                                         and p.red_precision_floor > 0),
    }


def _band_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    red, pred_red = y == "red", pred == "red"
    tp = float((red & pred_red).sum())
    ay, pay = y != "green", pred != "green"
    return {
        "red_recall": tp / max(1.0, float(red.sum())),
        "red_precision": tp / max(1.0, float(pred_red.sum())),
        "at_least_yellow_recall": float((ay & pay).sum()) / max(1.0, float(ay.sum())),
        "at_least_yellow_precision": float((ay & pay).sum()) / max(1.0, float(pay.sum())),
    }


# ---------------------------------------------------------------------------------------------------
# Reviewer wording
# ---------------------------------------------------------------------------------------------------

#: Count features: (present, absent) wording.
_COUNT_TEXT: dict[str, tuple[str, str]] = {
    "cue_red_1": ("提到危及人身安全的情况（如燃气泄漏、坍塌、电梯困人）", "未提到危及人身安全的情况"),
    "cue_red_2": ("提到急性公共卫生危害（如食物中毒、饮用水污染、疫情）", "未提到急性公共卫生危害"),
    "cue_red_3": ("提到多人面临严重损失（如拖欠工资、烂尾楼、非法集资、强拆）", "未提到多人面临严重损失"),
    "cue_red_4": ("提到群体性冲突升级（聚集、堵路、集体上访）", "未提到群体性冲突"),
    "cue_yellow_1": ("提到对健康、财产或生计的持续损害（如污染噪音、停水停电、物业纠纷）", "未提到持续性损害"),
    "cue_yellow_2": ("涉及较多群众（整个小区、村组或数十户）", "未提到涉及较多群众"),
    "cue_yellow_3": ("提到问题多次反映仍未解决", "未提到多次反映未解决"),
    "cue_yellow_4": ("涉及弱势群体（老人、儿童、残疾人、孕妇、重病患者）", "未提到弱势群体"),
    "has_many_people": ("受影响人数达到10人（户）以上", "未提到10人（户）以上受影响"),
    "body_empty": ("只有标题，没有正文", "有正文描述"),
    "money_mentions": ("提到了涉及的金额", "未提到金额"),
}
_CATEGORY_TEXT: dict[str, str] = {
    "gas_leak": "燃气泄漏或燃气味",
    "gas_cylinder": "不合格或报废的燃气钢瓶",
    "explosion": "爆炸",
    "fire": "起火或火灾",
    "fire_hazard_people": "有人居住场所的消防隐患",
    "collapse": "房屋或设施坍塌风险",
    "falling_objects": "高空坠物或构件脱落",
    "live_wires": "裸露电线或漏电",
    "flood_landslide": "洪水、内涝或山体滑坡",
    "road_bridge": "危险的道路或桥梁缺陷",
    "elevator": "电梯故障或困人",
    "hazardous_goods": "居住区附近存放或生产危险品",
    "injury_or_death": "已造成人员伤亡",
    "violence": "暴力或暴力威胁",
    "self_harm": "有人表示要伤害自己",
    "food_poisoning": "食物中毒",
    "drinking_water": "饮用水污染",
    "outbreak": "疫情或传染病",
    "denied_treatment": "急症患者得不到救治",
    "food_drug_safety": "问题食品、药品或疫苗",
    "wage_arrears": "拖欠工资",
    "overdue_housing": "烂尾楼或长期逾期交房",
    "fundraising_fraud": "非法集资或投资诈骗",
    "absconding": "收了众人钱款的一方跑路失联",
    "prepaid_loss": "预付款、定金或储值卡无法退还",
    "forced_demolition": "强制拆迁",
    "school_incident": "学校或幼儿园安全事件",
    "gathering_blocking": "聚集、堵路等群体行动",
    "heading_to_government": "准备到政府部门集体上访",
    "escalation": "矛盾激化、可能发生冲突",
    "pollution_nuisance": "持续的污染、噪音或异味",
    "utilities_cut": "停水、停电或停暖",
    "property_dispute": "与物业的纠纷",
    "compensation_dispute": "拆迁补偿纠纷",
    "employment": "劳动用工问题",
    "pension_social_insurance": "养老或社保待遇问题",
    "enrolment": "入学纠纷",
    "safety_hazard": "安全隐患",
    "threat_to_life": "可能危及生命的情况",
    "health_harm": "健康受到损害",
    "many_people": "涉及大量群众",
    "repeated_unresolved": "多次反映仍未解决",
    "vulnerable_people": "涉及老人、儿童等弱势群体",
    "people_count": "明确的受影响人数（10人或10户以上）",
}
_LENGTH_TEXT: dict[str, tuple[str, str]] = {
    "text_len_log1p": ("留言篇幅较长", "留言篇幅较短"),
    "title_chars": ("标题较长", "标题较短"),
    "body_chars": ("正文较长", "正文较短"),
    "digit_count": ("包含较多数字（日期、金额、人数等）", "数字较少"),
    "number_count": ("提到较多具体数字", "具体数字较少"),
    "sentence_count": ("叙述较详细（句子较多）", "叙述简短"),
    "people_max_log1p": ("提到的受影响人数较多", "未提到较多受影响人数"),
}


def feature_text(name: str, value: float, reference: float | None = None) -> str:
    """A reviewer's wording of feature ``name`` at ``value`` (``reference``: the training median)."""
    if name.startswith(DEPT_PREFIX):
        dept = name[len(DEPT_PREFIX):]
        if value >= 0.5:
            return f"属于{dept}类问题（可能性{value:.0%}）"
        if value >= 0.2:
            return f"可能属于{dept}类问题（可能性{value:.0%}）"
        return f"不太像{dept}类问题（可能性{value:.0%}）"
    if name.startswith(TEXT_SCORE_PREFIX):
        colour = {"red": "红色", "yellow": "黄色", "green": "绿色"}.get(name[len(TEXT_SCORE_PREFIX):], name)
        if value >= 0.5:
            return f"文本整体与{colour}案例相似（可能性{value:.0%}）"
        if value >= 0.2:
            return f"文本与{colour}案例有些相似（可能性{value:.0%}）"
        return f"文本整体不像{colour}案例（可能性{value:.0%}）"
    if name.startswith(TEXT_CRITERION_PREFIX):
        criterion = name[len(TEXT_CRITERION_PREFIX):]
        label = risk_cues.CRITERION_NAMES.get(criterion, criterion)
        if value >= SIMILAR_FROM:
            return f"文本与「{label}」的已标注案例相似（可能性{value:.0%}）"
        return f"文本不像「{label}」的已标注案例（可能性{value:.0%}）"
    if name.startswith(CATEGORY_PREFIX):
        phrase = _CATEGORY_TEXT.get(name[len(CATEGORY_PREFIX):], name[len(CATEGORY_PREFIX):])
        return f"提到{phrase}" if value > 0 else f"未提到{phrase}"
    if name in _COUNT_TEXT:
        present, absent = _COUNT_TEXT[name]
        return present if value > 0 else absent
    if name == "rule_level":
        return {2: "关键词规则判为红色（需当天处置）", 1: "关键词规则判为黄色（需数日内处理）"}.get(
            round(value), "关键词规则未发现风险线索"
        )
    if name == "exclamation_count":
        return f"使用了{int(value)}个感叹号，语气急迫" if value > 0 else "没有使用感叹号"
    if name == "question_count":
        return f"包含{int(value)}个问句（咨询类留言常见）" if value > 0 else "没有问句"
    if name == "burst_cases":
        return f"近期有{int(value)}件相似案件" if value > 0 else "近期没有相似案件"
    if name == "burst_people":
        return f"近期多人反映同一问题（{int(value)}人）" if value > 1 else "近期没有其他人反映同一问题"
    if name == "burst_recent_cases":
        return f"最近7天有{int(value)}件相似案件" if value > 0 else "最近7天没有相似案件"
    if name == "burst_growth":
        return "相似案件数量正在快速增加" if value > 1 else "相似案件数量没有明显增加"
    if name == "burst_votes":
        return f"相似留言获得{int(value)}个点赞" if value > 0 else "相似留言没有获得点赞"
    if name in _LENGTH_TEXT:
        more, less = _LENGTH_TEXT[name]
        if name == "people_max_log1p" and value > 0:
            return f"提到约{round(math.expm1(value))}人（户）受影响"
        if name == "text_len_log1p":
            shown = f"（约{round(math.expm1(value))}字）"
        elif name in ("title_chars", "body_chars"):
            shown = f"（{int(value)}字）"
        else:
            shown = ""
        return (more if reference is None or value >= reference else less) + shown
    return name


# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------


def _label_codes(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    codes = np.array([LEVELS.index(str(v)) if str(v) in LEVELS else -1 for v in labels], dtype=np.int64)
    if (codes < 0).any():
        bad = str(np.asarray(labels, dtype=object)[codes < 0][0])[:20]
        raise ValueError(f"unknown risk level {bad!r} (expected red, yellow or green)")
    return codes


#: Fits one LightGBM classifier: ``(LightGBM params, X, label codes, sample weights) -> fitted LGBMClassifier``.
#: `fit_booster_locally` (the default) fits in this process; `training.dask_train` gives one that fits on a Dask
#: cluster and returns its ``to_local()`` copy, so the stored model is the same kind of object either way.
#: Passed to `RiskModel.fit` for one training, never stored with the model.
BoosterFitter = Callable[[dict[str, Any], np.ndarray, np.ndarray, np.ndarray], lightgbm.LGBMClassifier]


def fit_booster_locally(
    params: dict[str, Any], X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray
) -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(**params).fit(X, y, sample_weight=sample_weight)


def _softmax(raw: np.ndarray) -> np.ndarray:
    z = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class RiskModel:
    """LightGBM over `risk_features`, decision bands and reasons. Picklable; fit once, predict often.

    Fitted attributes end in ``_``: ``classifier_`` (the LGBMClassifier), ``text_scorer_`` (the stacked
    `TextScorer`, None with ``text_score=False``), ``feature_names_``,
    ``dept_classes_`` (router classes it was trained with), ``bands_``, ``band_report_`` (how the bands were
    chosen and what they reached there), ``lexicon_version_``, ``medians_``, ``training_summary_``.
    """

    def __init__(self, params: RiskParams | None = None) -> None:
        self.params = params or RiskParams()

    # -- training ----------------------------------------------------------------------------------
    def fit(
        self,
        cases: pd.DataFrame,
        labels: Sequence[str] | np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        router_proba: np.ndarray | None = None,
        router_classes: list[str] | None = None,
        seed: int = 42,
        *,
        is_weak: np.ndarray | None = None,
        bands: Mapping[str, float] | None = None,
        fitter: BoosterFitter | None = None,
    ) -> RiskModel:
        """Train on ``cases`` (title, body, optional burst columns).

        ``labels`` None: `weak_labels(cases)` (``risk_level`` where set, else the cue rules, flagged weak).
        A ``criterion`` column (the rubric criterion an annotator named, e.g. red-2) trains the text
        model's criterion head, which names the criterion in a red or yellow case's first reason.
        ``sample_weight`` None: 1.0 for real labels, ``params.weak_label_weight`` for weak ones. ``bands``
        None: chosen on out-of-fold predictions (see `fit_features`). Same data + params + seed gives the
        same model. ``fitter`` fits each LightGBM classifier (band folds and the final one; default: in this
        process, `fit_booster_locally`).
        """
        if labels is None:
            labels, weak = weak_labels(cases)
            is_weak = weak if is_weak is None else is_weak
        X, names, texts, _ = _features_with_matches(cases, router_proba, router_classes)
        groups = cases["group_key"].to_numpy(dtype=object) if "group_key" in cases.columns else None
        criteria = criterion_column(cases)
        return self.fit_features(
            X, names, labels, sample_weight, seed=seed, is_weak=is_weak, bands=bands, groups=groups, texts=texts,
            fitter=fitter, criteria=criteria,
        )

    def fit_features(
        self,
        X: np.ndarray,
        feature_names: Sequence[str],
        labels: Sequence[str] | np.ndarray,
        sample_weight: np.ndarray | None = None,
        *,
        seed: int = 42,
        is_weak: np.ndarray | None = None,
        bands: Mapping[str, float] | None = None,
        groups: np.ndarray | None = None,
        texts: Sequence[str] | None = None,
        fitter: BoosterFitter | None = None,
        criteria: Sequence[str | None] | None = None,
    ) -> RiskModel:
        """`fit` on a matrix that `risk_features` built (the benchmark reuses one matrix across folds).

        With ``params.text_score`` the rows' ``case_text`` must be given as ``texts``: a `TextScorer` is
        trained on them (on the real labels alone with ``params.text_real_only`` when every level has
        ``min_real_per_level`` of them; same sample weights as LightGBM) and its out-of-fold probabilities
        (`models.risk_text.text_oof`: ``params.text_folds`` stratified folds, grouped by ``groups`` when
        given, shuffled with ``seed``) become the columns `TEXT_SCORE_FEATURES`, appended after the
        ``risk_features`` columns; the scorer fitted on all its rows (``text_scorer_``) gives them at
        prediction time. ``criteria`` (per row, None where unknown; only real rows count) trains its
        criterion head.

        Bands, when not given, come from out-of-fold predictions. With at least ``params.min_real_per_level``
        real red and yellow labels: ``band_folds`` stratified folds over the real-labelled rows (grouped by
        ``groups`` when given); every weak row stays in training except those in a held-out row's group;
        recall is measured on real labels only ("real-oof"). Otherwise: folds over all rows, recall measured
        against the weak labels ("weak-oof": the bands then reproduce the cue rules' recall, a weaker
        guarantee). The out-of-fold predictions are kept in ``band_oof_`` (see `rebanded`).
        """
        X = np.asarray(X, dtype=np.float32)
        names = [str(n) for n in feature_names]
        if X.ndim != 2 or X.shape[1] != len(names):
            raise ValueError(f"X has shape {X.shape} but {len(names)} feature names were given")
        if any("reporter" in n for n in names):
            raise ValueError("risk features must not describe the reporter")
        y = _label_codes(labels)
        if len(y) != len(X):
            raise ValueError(f"{len(y)} labels for {len(X)} rows")
        missing = [LEVELS[c] for c in range(len(LEVELS)) if not (y == c).any()]
        if missing:
            raise ValueError(f"training labels lack level(s) {missing}; every level needs examples")
        weak = np.zeros(len(y), dtype=bool) if is_weak is None else np.asarray(is_weak, dtype=bool)
        if sample_weight is None:
            w = np.where(weak, self.params.weak_label_weight, 1.0)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
        self.weak_left_out_ = 0
        limit = self.params.weak_until_real
        if limit and weak.any() and int((~weak).sum()) >= limit:
            keep = ~weak
            self.weak_left_out_ = int(weak.sum())
            logger.info("risk model: %d real labels, so the %d weak (cue-rule) rows are left out", int(keep.sum()),
                        self.weak_left_out_)
            X, y, w, weak = X[keep], y[keep], w[keep], weak[keep]
            groups = None if groups is None else np.asarray(groups, dtype=object)[keep]
            if texts is not None:
                texts = [t for t, k in zip(texts, keep, strict=True) if k]
            criteria = None if criteria is None else [c for c, k in zip(criteria, keep, strict=True) if k]

        self.text_scorer_: TextScorer | None = None
        self.text_criterion_features_: list[str] = []
        if self.params.text_score:
            if texts is None:
                raise ValueError("params.text_score needs the cases' texts (texts=); or set text_score=False")
            if len(texts) != len(y):
                raise ValueError(f"{len(texts)} texts for {len(y)} rows")
            if any(n.startswith(TEXT_SCORE_PREFIX) for n in names):
                raise ValueError("X already has text-score columns; pass the risk_features matrix")
            real = ~weak
            enough = all(int((y[real] == c).sum()) >= self.params.min_real_per_level for c in range(len(LEVELS)))
            text_rows = real if self.params.text_real_only and enough else None
            named = None if criteria is None else [c if r else None for c, r in zip(criteria, real, strict=True)]
            stacked: list[str] = []
            if self.params.text_criterion_features and named is not None:
                counts = pd.Series([c for c in named if c]).value_counts()
                stacked = [c for c in risk_cues.CRITERIA if c.startswith("red-")
                           and int(counts.get(c, 0)) >= self.params.text_folds]
            oof, oof_criteria, self.text_scorer_ = text_oof(
                _docs(texts), y, w, groups, seed, C=self.params.text_C, folds=self.params.text_folds,
                train_mask=text_rows, criteria=named, criterion_features=stacked, n_jobs=self.params.text_jobs,
            )
            self.text_criterion_features_ = stacked
            X = np.hstack([X, oof.astype(np.float32), oof_criteria.astype(np.float32)])
            names = [*names, *self._text_columns()]

        self.feature_names_ = names
        self.dept_classes_ = [n[len(DEPT_PREFIX):] for n in names if n.startswith(DEPT_PREFIX)]
        self.lexicon_version_ = load_lexicon().version
        self.text_pipeline_version_ = TEXT_PIPELINE_VERSION
        self.seed_ = seed
        self.medians_ = {n: float(v) for n, v in zip(names, np.median(X, axis=0), strict=True)}
        self.band_oof_ = None
        fitter = fitter or fit_booster_locally
        if bands is None:
            self.bands_, self.band_report_ = self._oof_bands(X, y, w, weak, seed, groups, fitter)
        else:
            self.bands_ = {"red": float(bands["red"]), "yellow": float(bands["yellow"])}
            self.band_report_ = {"source": "given"}
        self.classifier_ = fitter(self.params.lgbm_params(seed), X, y, w)
        self.training_summary_ = {
            "n_rows": len(y),
            "n_weak": int(weak.sum()),
            "n_real": int((~weak).sum()),
            "n_weak_left_out": self.weak_left_out_,
            **{f"n_real_{lvl}": int(((y == i) & ~weak).sum()) for i, lvl in enumerate(LEVELS)},
            **{f"n_weak_{lvl}": int(((y == i) & weak).sum()) for i, lvl in enumerate(LEVELS)},
        }
        self.__dict__.pop("_booster_cache", None)
        return self

    def _oof_bands(
        self,
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        weak: np.ndarray,
        seed: int,
        groups: np.ndarray | None,
        fitter: BoosterFitter,
    ) -> tuple[dict[str, float], dict[str, Any]]:
        p = self.params
        real = ~weak
        real_counts = [int((y[real] == c).sum()) for c in range(len(LEVELS))]
        use_real = min(real_counts[0], real_counts[1]) >= p.min_real_per_level and real_counts[2] >= 2
        eval_idx = np.flatnonzero(real) if use_real else np.arange(len(y))
        always_train = np.flatnonzero(weak) if use_real else np.array([], dtype=np.int64)
        y_eval = y[eval_idx]
        n_splits = min(p.band_folds, int(np.bincount(y_eval, minlength=3).min()))
        if n_splits < 2:
            raise ValueError("too few labelled cases per level to choose the risk bands out of fold")
        if groups is not None:
            cv: Any = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
            splits = cv.split(np.zeros(len(eval_idx)), y_eval, np.asarray(groups, dtype=object)[eval_idx])
        else:
            cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
            splits = cv.split(np.zeros(len(eval_idx)), y_eval)
        oof = np.zeros((len(eval_idx), len(LEVELS)))
        group_arr = None if groups is None else np.asarray(groups, dtype=object)
        for fit_pos, held_pos in splits:
            background = always_train
            if group_arr is not None and len(background):
                # A weak copy of a held-out case (same group) would leak its text into training.
                held_groups = set(group_arr[eval_idx[held_pos]])
                background = background[[g not in held_groups for g in group_arr[background]]]
            train_idx = np.concatenate([background, eval_idx[fit_pos]])
            if len(np.unique(y[train_idx])) < len(LEVELS):
                raise ValueError("a band fold lacks a risk level; add labelled cases")
            clf = fitter(p.lgbm_params(seed), X[train_idx], y[train_idx], w[train_idx])
            oof[held_pos] = clf.predict_proba(X[eval_idx[held_pos]])
        labels = np.asarray(LEVELS, dtype=object)[y_eval]
        self.band_oof_ = (labels, oof)
        bands = choose_bands(labels, oof, p.red_recall_target, p.yellow_recall_target, p.red_precision_floor)
        report = {
            "source": "real-oof" if use_real else "weak-oof",
            "n_rows": len(eval_idx),
            "folds": n_splits,
            **_band_report(labels, oof, bands, p),
        }
        if report["red_limited_by_precision"]:
            logger.warning(
                "the red band %.4g keeps red precision %.2f >= %.2f out of fold at red recall %.2f, below the "
                "target %.2f: some red cases look green to the features; more reviewed red cases would help",
                bands["red"], report["oof_red_precision"], p.red_precision_floor, report["oof_red_recall"],
                p.red_recall_target,
            )
        elif report["oof_red_precision"] < 0.5:
            logger.warning(
                "the red band %.4g reaches red recall %.2f out of fold only at red precision %.2f: some red cases "
                "look green to the features; more reviewed red cases or a lower red_recall_target would help",
                bands["red"], report["oof_red_recall"], report["oof_red_precision"],
            )
        if not use_real:
            logger.warning(
                "risk bands chosen against weak labels: fewer than %d reviewed red or yellow cases",
                p.min_real_per_level,
            )
        return bands, report

    def rebanded(
        self,
        red_recall_target: float | None = None,
        yellow_recall_target: float | None = None,
        *,
        bands: Mapping[str, float] | None = None,
        red_precision_floor: float | None = None,
    ) -> RiskModel:
        """A copy sharing this fitted classifier with other bands: given, or re-chosen for other targets
        on the stored out-of-fold predictions (``band_oof_``) that chose the current ones."""
        if not hasattr(self, "classifier_"):
            raise RuntimeError("this RiskModel is not fitted yet; call fit first")
        changes = {
            "red_recall_target": red_recall_target,
            "yellow_recall_target": yellow_recall_target,
            "red_precision_floor": red_precision_floor,
        }
        params = self.params.model_copy(update={k: v for k, v in changes.items() if v is not None})
        other = RiskModel(params)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("params", "_booster_cache")})
        if bands is not None:
            other.bands_ = {"red": float(bands["red"]), "yellow": float(bands["yellow"])}
            other.band_report_ = {"source": "given"}
            return other
        if self.band_oof_ is None:
            raise ValueError("no stored out-of-fold predictions to re-choose the bands on (bands were given)")
        labels, oof = self.band_oof_
        other.bands_ = choose_bands(
            labels, oof, params.red_recall_target, params.yellow_recall_target, params.red_precision_floor
        )
        other.band_report_ = {**self.band_report_, **_band_report(labels, oof, other.bands_, params)}
        return other

    # -- prediction --------------------------------------------------------------------------------
    def _booster(self) -> lightgbm.Booster:
        """The fitted booster, taken from the classifier once per loaded model (not pickled separately)."""
        if "_booster_cache" not in self.__dict__:
            self.__dict__["_booster_cache"] = self.classifier_.booster_
        return self.__dict__["_booster_cache"]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_booster_cache"}

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise RuntimeError("this RiskModel is not fitted yet; call fit first")
        version = load_lexicon().version
        if version != self.lexicon_version_:
            raise ValueError(
                f"the risk model was trained with risk lexicon version {self.lexicon_version_!r} but version "
                f"{version!r} is installed; retrain the model"
            )

    def features(
        self, cases: Any, router_proba: np.ndarray | None = None, router_classes: Sequence[str] | None = None
    ) -> np.ndarray:
        """`risk_features` aligned to the training columns (router classes matched by name)."""
        self._check_fitted()
        X, names, texts, _ = _features_with_matches(cases, router_proba, router_classes, self.dept_classes_)
        return self._with_text_score(X, names, texts)

    def _text_columns(self) -> list[str]:
        """Names of the stacked text-model columns: the level score, then the red criteria it stacks."""
        stacked = self.__dict__.get("text_criterion_features_", [])  # absent in models pickled before them
        return [*TEXT_SCORE_FEATURES, *(f"{TEXT_CRITERION_PREFIX}{c}" for c in stacked)]

    def _text_block(self, scorer: TextScorer, docs: Sequence[str]) -> np.ndarray:
        return np.hstack(scorer.score_docs(docs, self.__dict__.get("text_criterion_features_", [])))

    def _text_scorer(self) -> TextScorer | None:
        return self.__dict__.get("text_scorer_")  # absent in models pickled before the text score

    def _with_text_score(
        self, X: np.ndarray, names: list[str], texts: Sequence[str] | None, docs: Sequence[str] | None = None
    ) -> np.ndarray:
        """``X`` (risk_features columns) with the text-score columns appended when the model has them,
        checked against the training layout. ``docs``: the texts' `_docs`, when the caller has them."""
        scorer = self._text_scorer()
        if scorer is not None:
            if texts is None or len(texts) != len(X):
                raise ValueError("this risk model has a text score: the cases' texts are needed")
            docs = _docs(texts) if docs is None else docs
            X = np.hstack([X, self._text_block(scorer, docs).astype(np.float32)])
            names = [*names, *self._text_columns()]
        if names != self.feature_names_:
            raise ValueError("the feature layout differs from the one the model was trained with; retrain")
        return X

    def predict_proba_features(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities (columns red, yellow, green) for a matrix from `features` (the full layout), or from
        `risk_features` plus the cases' ``texts`` (``case_text``) when the model has a text score."""
        X = np.asarray(X, dtype=np.float32)
        scorer = self._text_scorer()
        if scorer is not None and X.shape[1] == len(self.feature_names_) - len(self._text_columns()):
            if texts is None or len(texts) != len(X):
                raise ValueError("this risk model has a text score: pass the cases' texts with a risk_features matrix")
            X = np.hstack([X, self._text_block(scorer, _docs(texts)).astype(np.float32)])
        if X.shape[1] != len(self.feature_names_):
            raise ValueError("the feature layout differs from the one the model was trained with; retrain")
        return self._booster().predict(X, num_threads=self._threads(len(X)))

    def predict_proba(
        self, cases: Any, router_proba: np.ndarray | None = None, router_classes: Sequence[str] | None = None
    ) -> np.ndarray:
        return self.predict_proba_features(self.features(cases, router_proba, router_classes))

    def _threads(self, n: int) -> int:
        # One row: a thread pool costs more than it saves.
        return 1 if n < 64 else self.params.n_jobs

    def predict(
        self,
        cases: Any,
        router_proba: np.ndarray | None = None,
        router_classes: Sequence[str] | None = None,
        *,
        bursts: Sequence[Mapping[str, Any] | None] | None = None,
        reasons: bool = True,
    ) -> list[RiskResult]:
        """Level, probabilities and reasons for each case: `PreparedCase`s (the hot path: nothing is
        normalised or tokenised again), (title, body) pairs, or a DataFrame with title / body and optional
        burst columns. ``router_proba`` rows align with the cases, columns with ``router_classes``; None
        gives zero router features. ``bursts``: each case's `BURST_COLUMNS` values (None: no burst)."""
        self._check_fitted()
        X, names, prepared, matches = _features_with_matches(
            cases, router_proba, router_classes, self.dept_classes_, bursts
        )
        docs = _docs(prepared) if self._text_scorer() is not None else None
        X = self._with_text_score(X, names, prepared, docs)
        return self._results(X, matches, reasons, _plain(prepared), docs)

    def predict_one(
        self,
        title: str | None,
        body: str | None,
        router_proba: np.ndarray | None = None,
        router_classes: Sequence[str] | None = None,
        burst: Mapping[str, Any] | None = None,
        *,
        reasons: bool = True,
    ) -> RiskResult:
        """`predict` for one case given as title and body. ``burst``: its `BURST_COLUMNS` values, if any."""
        return self.predict([prepare(title, body)], router_proba, router_classes, bursts=[burst], reasons=reasons)[0]

    def levels(self, proba: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Levels for probabilities from `predict_proba_features(X)`: the bands, then the safety floor."""
        return self._levels(proba, X)[0]

    def _levels(self, proba: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        levels = levels_from_proba(proba, self.bands_)
        lifted = np.zeros(len(levels), dtype=bool)
        if getattr(self.params, "red_cue_floor", False):  # models pickled before the floor existed: off
            rule = np.asarray(X, dtype=np.float64)[:, self.feature_names_.index("rule_level")]
            lifted = (rule >= 2) & (levels == "green")
            levels[lifted] = "yellow"
        return levels, lifted

    def _results(
        self,
        X: np.ndarray,
        matches: list[list[CueMatch]],
        reasons: bool,
        texts: Sequence[str] | None = None,
        docs: Sequence[str] | None = None,
    ) -> list[RiskResult]:
        if len(X) == 0:
            return []
        booster = self._booster()
        k, f = len(LEVELS), X.shape[1]
        threads = self._threads(len(X))
        if reasons:
            # One pass gives both: the contributions of a class sum to its raw score.
            contrib = np.asarray(booster.predict(X, pred_contrib=True, num_threads=threads)).reshape(len(X), k, f + 1)
            proba = _softmax(contrib.sum(axis=2))
        else:
            contrib = None
            proba = booster.predict(X, num_threads=threads)
        levels, lifted = self._levels(proba, X)
        out = []
        for i, level in enumerate(levels):
            probs = {lvl: float(proba[i, j]) for j, lvl in enumerate(LEVELS)}
            found: list[Reason] = []
            if contrib is not None:
                found = self._reasons(
                    str(level), X[i], contrib[i], matches[i], bool(lifted[i]),
                    texts[i] if texts is not None else None, docs[i] if docs is not None else None,
                )
            out.append(RiskResult(level=str(level), probabilities=probs, reasons=found))
        return out

    def _reasons(
        self,
        level: str,
        x: np.ndarray,
        contrib: np.ndarray,
        matches: list[CueMatch],
        lifted: bool,
        text: str | None,
        doc: str | None,
    ) -> list[Reason]:
        """A red or yellow case's reasons open with the rubric criterion it meets and the case's phrases that
        show it; then the safety floor, the other cue phrases, and the model's features (for red and yellow
        only those that describe the situation: never lengths, counts of digits or "unlike green cases")."""
        # A case the safety floor lifted meets the red criterion its cue names, whatever its level.
        head = self._criterion_reasons("red" if lifted else level, matches, text, doc)
        shown = {(r.text, r.criterion) for r in head}
        cues = [
            Reason(kind="cue", text=m.phrase, criterion=m.criterion, category=m.category, start=m.start, end=m.end)
            for m in matches
            if (m.phrase, m.criterion) not in shown
        ]
        model = self._model_reasons(x, contrib, LEVELS.index(level), situational_only=level != "green")
        rule: list[Reason] = []
        if lifted:
            red_criteria = sorted({m.criterion for m in matches if m.criterion.startswith("red")})
            rule = [Reason(kind="rule", text=RULE_FLOOR_TEXT, criterion=red_criteria[0] if red_criteria else None)]
        return [*head[:1], *rule, *head[1:], *cues, *model]

    def _criterion_reasons(
        self, level: str, matches: list[CueMatch], text: str | None, doc: str | None
    ) -> list[Reason]:
        """[the criterion reason, then its phrases as kind "cue" with offsets]; [] for green, or when neither
        the lexicon nor the text model names a criterion of the level.

        The criterion is the one of the level the lexicon found most often (ties and no cue: the text
        model's most likely); its phrases are the lexicon's matches, or, when the lexicon found none, the
        text model's strongest terms for it that occur in the text as written ("learned" phrases)."""
        if level == "green":
            return []
        scorer = self._text_scorer()
        evidence = scorer.criterion_evidence(doc, level, max_phrases=6) if scorer is not None and doc else None
        at_level = [m for m in matches if m.criterion.startswith(f"{level}-")]
        if at_level:
            counts: dict[str, int] = {}
            for m in at_level:
                counts[m.criterion] = counts.get(m.criterion, 0) + 1
            favoured = evidence.criterion if evidence is not None else None
            criterion = max(counts, key=lambda c: (counts[c], c == favoured))
        elif evidence is not None:
            criterion = evidence.criterion
        else:
            return []
        # Every lexicon match of the criterion (each occurrence, so the page marks them all); the text model's
        # strongest phrases found in the text only where the lexicon has none: the situations it never listed.
        phrases = [Reason(kind="cue", text=m.phrase, criterion=criterion, category=m.category, start=m.start,
                          end=m.end) for m in at_level if m.criterion == criterion]
        if not phrases and evidence is not None and evidence.criterion == criterion and text:
            for phrase in evidence.phrases:
                start = text.find(phrase)
                if start >= 0 and not any(phrase in p.text or p.text in phrase for p in phrases):
                    phrases.append(Reason(kind="cue", text=phrase, criterion=criterion, category=LEARNED_CATEGORY,
                                          start=start, end=start + len(phrase)))
                if len(phrases) >= MAX_CRITERION_PHRASES:
                    break
        quoted = list(dict.fromkeys(p.text for p in phrases))[:MAX_CRITERION_PHRASES]
        name = risk_cues.CRITERION_NAMES[criterion]
        colour = {"red": "红色", "yellow": "黄色"}[level]
        number = criterion.split("-", 1)[1]
        shown_phrases = "、".join(f"“{q}”" for q in quoted)
        wording = f"符合{colour}标准{number}「{name}」" + (f"：文中{shown_phrases}" if quoted else "")
        probability = evidence.probability if evidence is not None and evidence.criterion == criterion else None
        head = Reason(kind="criterion", text=wording, criterion=criterion, value=probability)
        return [head, *phrases]

    def _model_reasons(
        self, x: np.ndarray, contrib: np.ndarray, c: int, *, situational_only: bool = False
    ) -> list[Reason]:
        """Features that pushed toward level ``c``: its contribution minus the mean over the other levels,
        strongest first; with ``situational_only``, the strongest of those `situational_feature` accepts.

        Softmax probabilities only depend on differences of raw scores, so a feature raising every level's
        score alike explains nothing; this difference is what moves P(level) up.
        """
        n_features = len(self.feature_names_)
        others = [j for j in range(len(LEVELS)) if j != c]
        toward = contrib[c, :n_features] - contrib[others, :n_features].mean(axis=0)
        out: list[Reason] = []
        for j in np.argsort(-toward, kind="stable"):
            if toward[j] <= 1e-6 or len(out) >= self.params.max_model_reasons:
                break
            name = self.feature_names_[j]
            value = float(x[j])
            if situational_only and not situational_feature(name, value):
                continue
            out.append(
                Reason(kind="model", text=feature_text(name, value, self.medians_.get(name)), feature=name,
                       value=value, weight=round(float(toward[j]), 4))
            )
        return out

    # -- description -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything that identifies this model, for MLflow params / the bundle metadata (JSON-safe)."""
        return {
            "params": self.params.model_dump(mode="json"),
            "seed": self.seed_,
            "bands": dict(self.bands_),
            "band_report": dict(self.band_report_),
            "lexicon_version": self.lexicon_version_,
            "text_pipeline_version": self.text_pipeline_version_,
            "n_features": len(self.feature_names_),
            "text_score": self._text_scorer() is not None,
            "dept_classes": list(self.dept_classes_),
            "training": dict(self.training_summary_),
        }
