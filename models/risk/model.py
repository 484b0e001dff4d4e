"""`RiskModel`: LightGBM over the risk features, decision bands and reasons a reviewer can check."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import lightgbm
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from features import risk_cues
from features.prepared import prepare
from features.risk_cues import LEVELS, CueMatch, load_lexicon
from features.text import TEXT_PIPELINE_VERSION
from models.risk.bands import _band_report, choose_bands, levels_from_proba
from models.risk.contributions import contributions as contributions_of
from models.risk.contributions import iterations_using, moved
from models.risk.features import (
    BURST_FEATURES,
    DEPT_PREFIX,
    TEXT_CRITERION_PREFIX,
    TEXT_SCORE_FEATURES,
    TEXT_SCORE_PREFIX,
    TEXT_STAT_FEATURES,
    _burst_row,
    _docs,
    _features_with_matches,
    _plain,
    criterion_column,
    weak_labels,
)
from models.risk.params import RiskParams
from models.risk.text_score import DocTerms, TextScorer, text_oof
from models.risk.wording import RULE_FLOOR_TEXT, SIMILAR_FROM, criterion_text, feature_text

logger = logging.getLogger(__name__)

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
        # Every field is a plain value: `dataclasses.asdict`'s recursive deep copy cost more than the rest of
        # a case's answer.
        return {name: getattr(self, name) for name in _REASON_FIELDS}


_REASON_FIELDS = tuple(f.name for f in fields(Reason))


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


@dataclass(frozen=True)
class RiskInputs:
    """A batch as the risk model reads it, before the hot-issue detector has placed its cases.

    Why a stage of its own: placing cases is the one step that must run in time order, in one process;
    everything else about a case (cues, text score, router block) can be read in parallel first
    (`RiskModel.inputs`), and the levels come after (`RiskModel.predict_inputs`), from the same matrix.
    """

    #: The full feature layout; burst columns as given to `inputs` (zero without), until bursts are set.
    X: np.ndarray
    #: Cue matches, texts and text-model documents: what reasons quote. None once `for_levels` dropped them.
    matches: list[list[CueMatch]] | None
    texts: list[str] | None
    docs: list[str] | None
    #: Each document's TF-IDF terms from the text score, read again by a red or yellow case's reasons.
    terms: list[DocTerms] | None = None
    #: The booster's contributions for ``X`` as it is (`models.risk.contributions`), when asked for: reasons
    #: need them, and computing them here keeps them out of the detector's transaction.
    contrib: np.ndarray | None = None

    def for_levels(self) -> RiskInputs:
        """Only what levels need: the matrix (the rest is the case's text, heavy to send between processes)."""
        return RiskInputs(self.X, None, None, None)

    def row(self, i: int) -> RiskInputs:
        """Case `i`'s inputs alone: what `RiskModel.inputs` gives for that case by itself (each case is read
        alone), without reading it again."""
        def one(items: list[Any] | None) -> list[Any] | None:
            return None if items is None else [items[i]]

        contrib = None if self.contrib is None else self.contrib[i : i + 1]
        return RiskInputs(self.X[i : i + 1], one(self.matches), one(self.texts), one(self.docs), one(self.terms),
                          contrib)

    @classmethod
    def concat(cls, parts: Sequence[RiskInputs]) -> RiskInputs:
        """Consecutive batches' inputs as one (what reasons read kept only if every part kept it)."""
        def joined(lists: list[list[Any] | None]) -> list[Any] | None:
            return None if any(x is None for x in lists) else [item for x in lists for item in x]  # type: ignore[union-attr]

        contribs = [p.contrib for p in parts]
        contrib = None if any(c is None for c in contribs) else np.concatenate(contribs)  # type: ignore[arg-type]
        return cls(np.vstack([p.X for p in parts]), joined([p.matches for p in parts]),
                   joined([p.texts for p in parts]), joined([p.docs for p in parts]), joined([p.terms for p in parts]),
                   contrib)


MAX_CRITERION_PHRASES = 3
#: Category of a cue reason that the text model found, not the lexicon.
LEARNED_CATEGORY = "learned"
#: Features that describe the form of a message, not its situation: never a reason for red or yellow.
FORM_FEATURES: frozenset[str] = frozenset(
    {*TEXT_STAT_FEATURES, "text_len_log1p", "exclamation_count", "question_count", f"{TEXT_SCORE_PREFIX}green"}
)




def situational_feature(name: str, value: float) -> bool:
    """Whether a model feature may stand as a reason for red or yellow: present in the case (value > 0; for
    the text model's scores, similar enough to say so), and about the situation (cues, people counts,
    bursts, resemblance to red / yellow cases), not the form of the message nor the department it
    resembles."""
    if name.startswith((TEXT_SCORE_PREFIX, TEXT_CRITERION_PREFIX)) and value < SIMILAR_FROM:
        return False
    return value > 0 and name not in FORM_FEATURES and not name.startswith(DEPT_PREFIX)



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


class RiskModel(BaseEstimator):
    """LightGBM over `risk_features`, decision bands and reasons. Picklable; fit once, predict often.

    Keeps scikit-learn's estimator contract: ``params`` (None: the defaults) and ``random_state`` are stored
    unchanged by ``__init__``, so `sklearn.base.clone` and ``get_params`` work; predicting before `fit`
    raises `NotFittedError`; input is text (cases), which its tags say.

    Fitted attributes end in ``_``: ``classifier_`` (the LGBMClassifier), ``text_scorer_`` (the stacked
    `TextScorer`, None with ``text_score=False``), ``feature_names_``,
    ``dept_classes_`` (router classes it was trained with), ``bands_``, ``band_report_`` (how the bands were
    chosen and what they reached there), ``lexicon_version_``, ``medians_``, ``training_summary_``.
    """

    def __init__(self, params: RiskParams | None = None, random_state: int = 42) -> None:
        self.params = params
        self.random_state = random_state

    @property
    def resolved_params(self) -> RiskParams:
        """``params``, or the defaults when it is None (sklearn keeps ``__init__`` arguments unchanged)."""
        return self.params if self.params is not None else RiskParams()

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Models pickled by earlier versions get what they lack, set as those versions behaved: the one
        place older risk models are brought up to date (no attribute checks scattered through the code)."""
        state.setdefault("random_state", state.get("seed_", 42))  # fitted with the seed it recorded
        state.setdefault("text_scorer_", None)  # before the stacked text score
        state.setdefault("text_criterion_features_", [])  # before its criterion columns
        params = state.get("params")
        if isinstance(params, RiskParams) and "red_cue_floor" not in params.__dict__:
            state["params"] = params.model_copy(update={"red_cue_floor": False})  # before the safety floor
        super().__setstate__(state)

    # -- training ----------------------------------------------------------------------------------
    def fit(
        self,
        cases: pd.DataFrame,
        labels: Sequence[str] | np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        router_proba: np.ndarray | None = None,
        router_classes: list[str] | None = None,
        seed: int | None = None,
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
        seed: int | None = None,
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
        (`models.risk.text_score.text_oof`: ``params.text_folds`` stratified folds, grouped by ``groups`` when
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
        seed = self.random_state if seed is None else seed
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
            w = np.where(weak, self.resolved_params.weak_label_weight, 1.0)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
        self.weak_left_out_ = 0
        limit = self.resolved_params.weak_until_real
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
        if self.resolved_params.text_score:
            if texts is None:
                raise ValueError("params.text_score needs the cases' texts (texts=); or set text_score=False")
            if len(texts) != len(y):
                raise ValueError(f"{len(texts)} texts for {len(y)} rows")
            if any(n.startswith(TEXT_SCORE_PREFIX) for n in names):
                raise ValueError("X already has text-score columns; pass the risk_features matrix")
            real = ~weak
            least = self.resolved_params.min_real_per_level
            enough = all(int((y[real] == c).sum()) >= least for c in range(len(LEVELS)))
            text_rows = real if self.resolved_params.text_real_only and enough else None
            named = None if criteria is None else [c if r else None for c, r in zip(criteria, real, strict=True)]
            stacked: list[str] = []
            if self.resolved_params.text_criterion_features and named is not None:
                counts = pd.Series([c for c in named if c]).value_counts()
                stacked = [c for c in risk_cues.CRITERIA if c.startswith("red-")
                           and int(counts.get(c, 0)) >= self.resolved_params.text_folds]
            oof, oof_criteria, self.text_scorer_ = text_oof(
                _docs(texts), y, w, groups, seed, C=self.resolved_params.text_C, folds=self.resolved_params.text_folds,
                train_mask=text_rows, criteria=named, criterion_features=stacked, n_jobs=self.resolved_params.text_jobs,
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
        self.classifier_ = fitter(self.resolved_params.lgbm_params(seed), X, y, w)
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
        p = self.resolved_params
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
        check_is_fitted(self, "classifier_")
        changes = {
            "red_recall_target": red_recall_target,
            "yellow_recall_target": yellow_recall_target,
            "red_precision_floor": red_precision_floor,
        }
        params = self.resolved_params.model_copy(update={k: v for k, v in changes.items() if v is not None})
        other = RiskModel(params, self.random_state)
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

    def _burst_iterations(self) -> tuple[int, ...]:
        """The booster's iterations with a tree that splits on a burst column (`models.risk.contributions`)."""
        if "_burst_iterations_cache" not in self.__dict__:
            self.__dict__["_burst_iterations_cache"] = iterations_using(self._booster(), self._burst_columns())
        return self.__dict__["_burst_iterations_cache"]

    def prepare_reasons(self) -> None:
        """Build now what reasons read lazily: the text scorer's terms, kept joined in a loaded model until a
        reason quotes a phrase (`TextScorer.__getstate__`), so a service's first red case does not split them."""
        scorer = self._text_scorer()
        if scorer is not None:
            _ = scorer.terms_

    def _burst_columns(self) -> list[int]:
        return [self.feature_names_.index(name) for name in BURST_FEATURES]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the live __dict__
        state.pop("_booster_cache", None)
        state.pop("_burst_iterations_cache", None)
        return state

    def _check_fitted(self) -> None:
        check_is_fitted(self, "classifier_")
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
        return self._with_text_score(X, names, texts)[0]

    def _text_columns(self) -> list[str]:
        """Names of the stacked text-model columns: the level score, then the red criteria it stacks."""
        stacked = self.text_criterion_features_
        return [*TEXT_SCORE_FEATURES, *(f"{TEXT_CRITERION_PREFIX}{c}" for c in stacked)]

    def _text_block(self, scorer: TextScorer, docs: Sequence[str]) -> tuple[np.ndarray, list[DocTerms]]:
        """The stacked text-score columns (float32) and each document's TF-IDF terms, which reasons read again."""
        levels, named, terms = scorer.score_and_terms(docs, self.text_criterion_features_)
        return np.hstack([levels, named]).astype(np.float32), terms

    def _text_scorer(self) -> TextScorer | None:
        return self.text_scorer_

    def _with_text_score(
        self, X: np.ndarray, names: list[str], texts: Sequence[str] | None, docs: Sequence[str] | None = None
    ) -> tuple[np.ndarray, list[DocTerms] | None]:
        """``X`` (risk_features columns) with the text-score columns appended when the model has them, checked
        against the training layout, and the documents' TF-IDF terms (None without a text score). ``docs``: the
        texts' `_docs`, when the caller has them."""
        scorer = self._text_scorer()
        terms = None
        if scorer is not None:
            if texts is None or len(texts) != len(X):
                raise ValueError("this risk model has a text score: the cases' texts are needed")
            block, terms = self._text_block(scorer, _docs(texts) if docs is None else docs)
            X = np.hstack([X, block])
            names = [*names, *self._text_columns()]
        if names != self.feature_names_:
            raise ValueError("the feature layout differs from the one the model was trained with; retrain")
        return X, terms

    def predict_proba_features(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities (columns red, yellow, green) for a matrix from `features` (the full layout), or from
        `risk_features` plus the cases' ``texts`` (``case_text``) when the model has a text score."""
        X = np.asarray(X, dtype=np.float32)
        scorer = self._text_scorer()
        if scorer is not None and X.shape[1] == len(self.feature_names_) - len(self._text_columns()):
            if texts is None or len(texts) != len(X):
                raise ValueError("this risk model has a text score: pass the cases' texts with a risk_features matrix")
            X = np.hstack([X, self._text_block(scorer, _docs(texts))[0]])
        if X.shape[1] != len(self.feature_names_):
            raise ValueError("the feature layout differs from the one the model was trained with; retrain")
        return self._booster().predict(X, num_threads=self._threads(len(X)))

    def predict_proba(
        self, cases: Any, router_proba: np.ndarray | None = None, router_classes: Sequence[str] | None = None
    ) -> np.ndarray:
        return self.predict_proba_features(self.features(cases, router_proba, router_classes))

    def _threads(self, n: int) -> int:
        # One row: a thread pool costs more than it saves.
        return 1 if n < 64 else self.resolved_params.n_jobs

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
        inputs = self.inputs(cases, router_proba, router_classes, bursts=bursts)
        return self.predict_inputs(inputs, reasons=reasons)

    def inputs(
        self,
        cases: Any,
        router_proba: np.ndarray | None = None,
        router_classes: Sequence[str] | None = None,
        *,
        bursts: Sequence[Mapping[str, Any] | None] | None = None,
        contributions: bool = False,
    ) -> RiskInputs:
        """Everything `predict` reads of the cases, bursts included when given (else zero, or a frame's
        columns); `predict_inputs` may set the bursts later. ``contributions``: the reasons' contributions
        too, now, so that setting the bursts later only updates them (`models.risk.contributions`)."""
        self._check_fitted()
        X, names, prepared, matches = _features_with_matches(
            cases, router_proba, router_classes, self.dept_classes_, bursts
        )
        docs = _docs(prepared) if self._text_scorer() is not None else None
        X, terms = self._with_text_score(X, names, prepared, docs)
        contrib = None
        if contributions:
            self._burst_iterations()  # found once per model here, not in the detector's transaction
            contrib = contributions_of(self._booster(), X, len(LEVELS), self._threads(len(X)))
        return RiskInputs(X, matches, _plain(prepared), docs, terms, contrib)

    def predict_inputs(
        self,
        inputs: RiskInputs,
        *,
        bursts: Sequence[Mapping[str, Any] | None] | None = None,
        reasons: bool = True,
    ) -> list[RiskResult]:
        """`predict` from `inputs`, with each case's `BURST_COLUMNS` values when given (None: no burst)."""
        self._check_fitted()
        X = inputs.X
        if bursts is not None:
            if len(bursts) != len(X):
                raise ValueError(f"{len(bursts)} burst rows for {len(X)} cases")
            X = X.copy()
            if len(X):
                X[:, self._burst_columns()] = [_burst_row(b) for b in bursts]
        if reasons and inputs.matches is None:
            raise ValueError("these inputs were kept for levels only (for_levels); reasons need the full inputs")
        contrib = None
        if reasons and inputs.contrib is not None:
            contrib = moved(self._booster(), inputs.contrib, inputs.X, X, self._burst_columns(),
                            self._burst_iterations())
        return self._results(X, inputs.matches or [], reasons, inputs.texts, inputs.docs, inputs.terms, contrib)

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
        if self.resolved_params.red_cue_floor:
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
        terms: Sequence[DocTerms] | None = None,
        contrib: np.ndarray | None = None,
    ) -> list[RiskResult]:
        """``contrib``: the booster's contributions for ``X``, when the caller has them already."""
        if len(X) == 0:
            return []
        booster = self._booster()
        threads = self._threads(len(X))
        if reasons:
            # One pass gives both: the contributions of a class sum to its raw score.
            if contrib is None:
                contrib = contributions_of(booster, X, len(LEVELS), threads)
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
                    terms[i] if terms is not None else None,
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
        terms: DocTerms | None = None,
    ) -> list[Reason]:
        """A red or yellow case's reasons open with the rubric criterion it meets and the case's phrases that
        show it; then the safety floor, the other cue phrases, and the model's features (for red and yellow
        only those that describe the situation: never lengths, counts of digits or "unlike green cases")."""
        # A case the safety floor lifted meets the red criterion its cue names, whatever its level.
        head = self._criterion_reasons("red" if lifted else level, matches, text, doc, terms)
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
        self, level: str, matches: list[CueMatch], text: str | None, doc: str | None, terms: DocTerms | None = None
    ) -> list[Reason]:
        """[the criterion reason, then its phrases as kind "cue" with offsets]; [] for green, or when neither
        the lexicon nor the text model names a criterion of the level.

        The criterion is the one of the level the lexicon found most often (ties and no cue: the text
        model's most likely); its phrases are the lexicon's matches, or, when the lexicon found none, the
        text model's strongest terms for it that occur in the text as written ("learned" phrases)."""
        if level == "green":
            return []
        scorer = self._text_scorer()
        evidence = (
            scorer.criterion_evidence(doc, level, max_phrases=6, terms=terms) if scorer is not None and doc else None
        )
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
        wording = criterion_text(level, criterion, quoted)
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
            if toward[j] <= 1e-6 or len(out) >= self.resolved_params.max_model_reasons:
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
            "params": self.resolved_params.model_dump(mode="json"),
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
