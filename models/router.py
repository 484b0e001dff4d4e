"""Factory for the department router: text features followed by a calibrated linear classifier."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from features.vectorizer import CaseVectorizer, FeatureParams


class HashedParams(BaseModel):
    """Settings of ``kind: hashed_sgd`` (`models.hashed_router`): hashed features, SGD over chunks."""

    model_config = ConfigDict(extra="forbid")

    #: Hashed columns per feature block (words, title words, characters); collisions fall as it grows.
    n_features: int = Field(2**18, ge=2**10, le=2**24)
    #: Cases per chunk: what one process holds of the text at a time while learning.
    chunk_size: int = Field(2000, ge=1)
    #: Passes of SGD over the (spilled, hashed) chunks.
    epochs: int = Field(5, ge=1, le=100)
    #: L2 regularisation of SGD (plays the part of 1 / (C x cases) for LinearSVC).
    alpha: float = Field(1e-5, gt=0)
    loss: Literal["modified_huber", "hinge", "log_loss"] = "modified_huber"


class ClassifierParams(BaseModel):
    """The linear model and how its scores become calibrated probabilities."""

    model_config = ConfigDict(extra="forbid")

    #: linear_svc / logistic_regression: TF-IDF vocabulary + one fit on all cases in memory (the default).
    #: hashed_sgd: hashed features + SGD streamed over chunks (`models.hashed_router`), see ``hashed``.
    kind: Literal["linear_svc", "logistic_regression", "hashed_sgd"] = "linear_svc"
    C: float = Field(1.0, gt=0)
    class_weight: Literal["balanced"] | None = "balanced"
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    calibration_folds: int = Field(5, ge=2)
    # False: one model on all training data, calibrated on cross-validated scores. Tuning found it as
    # good as averaging per-fold models (ensemble=True) at a fifth of the prediction cost.
    calibration_ensemble: bool = False
    #: Only with kind hashed_sgd (defaults filled in then). C is not used by it: see ``hashed.alpha``.
    hashed: HashedParams | None = None

    @model_validator(mode="after")
    def _hashed_settings(self) -> ClassifierParams:
        if self.kind != "hashed_sgd":
            if self.hashed is not None:
                raise ValueError(f"hashed: settings only apply to kind hashed_sgd, not {self.kind}")
            return self
        if self.calibration != "sigmoid":
            raise ValueError("kind hashed_sgd calibrates with sigmoid only (isotonic needs every score at once)")
        if self.calibration_ensemble:
            raise ValueError("kind hashed_sgd keeps one model (calibration_ensemble must be false)")
        if self.hashed is None:
            self.hashed = HashedParams()
        return self


class PerClassFolds:
    """Stratified folds for calibration, as many as the rarest department allows (at most `folds`, at least
    2). A new city's taxonomy always has rare departments, and `CalibratedClassifierCV` refused a class with
    fewer cases than folds ("Requesting 5-fold cross-validation but provided less than 5 examples"): such a
    department is now calibrated on fewer folds, and with too few cases for a threshold it goes to review.
    No `n_splits` attribute on purpose: scikit-learn checks that one against the rarest class."""

    def __init__(self, folds: int, seed: int) -> None:
        self.folds = folds
        self.seed = seed

    def _splitter(self, y: Any) -> StratifiedKFold:
        rarest = int(np.unique(np.asarray(y, dtype=object), return_counts=True)[1].min())
        return StratifiedKFold(max(2, min(self.folds, rarest)), shuffle=True, random_state=self.seed)

    def split(self, X: Any, y: Any, groups: Any = None) -> Any:
        return self._splitter(y).split(X, y)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.folds if y is None else self._splitter(y).get_n_splits()


def build_router(features: FeatureParams, classifier: ClassifierParams, seed: int) -> Pipeline:
    """An unfitted router pipeline: (title, body) cases → probabilities over departments."""
    if classifier.kind == "hashed_sgd":
        from models.hashed_router import build_hashed_router

        return build_hashed_router(features, classifier, seed)
    if classifier.kind == "linear_svc":
        base = LinearSVC(C=classifier.C, class_weight=classifier.class_weight, random_state=seed)
    else:
        base = LogisticRegression(
            C=classifier.C, class_weight=classifier.class_weight, max_iter=2000, random_state=seed
        )
    calibrated = CalibratedClassifierCV(
        base,
        method=classifier.calibration,
        cv=PerClassFolds(classifier.calibration_folds, seed),
        ensemble=classifier.calibration_ensemble,
    )
    return Pipeline(
        [("features", CaseVectorizer(**features.model_dump())), ("classifier", calibrated)]
    )
