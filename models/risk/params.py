"""Hyper-parameters of the risk model and its decision bands, and the order of the levels."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Severity order of the levels: a higher number is more urgent.
LEVEL_ORDER: dict[str, int] = {"green": 0, "yellow": 1, "red": 2}
#: Columns of the input frame carrying the hot-issue detector's statistics at intake, in feature order.

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

