"""The risk model: red / yellow / green for one case, with probabilities and reasons a reviewer can check.

A LightGBM classifier reads four blocks of features of a case (`risk_features`):

- **cue features** of ``case_text(title, body)``: the per-criterion counts and rule level of
  `features.risk_cues.cue_features`, plus one count per lexicon category (``cue_cat:gas_leak`` ...);
- **router probabilities**, one column per department (``dept_p:城乡建设`` ...), zeros without a router;
- **text statistics**: lengths, digits, numbers, amounts of money, sentences;
- **a stacked text model** (``text_p:red`` ..., ``text_c:red-1`` ...; `RiskParams.text_score`): P(level)
  and P(each red criterion) of a TF-IDF (word 1-2-grams, character 2-3-grams) + logistic-regression model
  learnt from the real labels (`models.risk.text_score.TextScorer`), out of fold on the training rows;
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

from features.risk_cues import LEVELS
from models.risk.bands import choose_bands, levels_from_proba
from models.risk.features import (
    BURST_COLUMNS,
    BURST_FEATURES,
    TEXT_SCORE_FEATURES,
    TEXT_STAT_FEATURES,
    criterion_column,
    risk_features,
    weak_labels,
)
from models.risk.model import (
    BoosterFitter,
    Reason,
    RiskInputs,
    RiskModel,
    RiskResult,
    fit_booster_locally,
    situational_feature,
)
from models.risk.params import LEVEL_ORDER, RiskParams
from models.risk.text_score import TextScorer
from models.risk.wording import feature_text

__all__ = [
    "BURST_COLUMNS",
    "BURST_FEATURES",
    "LEVELS",
    "LEVEL_ORDER",
    "TEXT_SCORE_FEATURES",
    "TEXT_STAT_FEATURES",
    "BoosterFitter",
    "Reason",
    "RiskInputs",
    "RiskModel",
    "RiskParams",
    "RiskResult",
    "TextScorer",
    "choose_bands",
    "criterion_column",
    "feature_text",
    "fit_booster_locally",
    "levels_from_proba",
    "risk_features",
    "situational_feature",
    "weak_labels",
]
