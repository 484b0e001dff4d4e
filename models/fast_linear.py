"""A numpy-only scorer equivalent to a fitted `CalibratedClassifierCV` over linear models.

sklearn's own `predict_proba` validates its input in every one of the (folds x classes) calibrators;
for one case that validation costs several times the arithmetic. This class reads the fitted
coefficients and sigmoid parameters once and does the same arithmetic directly. It is derived from the
fitted object, never trained separately, and tests assert it matches sklearn to float precision.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration


class CompiledCalibratedLinear:
    def __init__(self, model: CalibratedClassifierCV) -> None:
        classes = list(model.classes_)
        if len(classes) < 3:
            raise ValueError("compiled scoring covers multiclass routers only")
        self.n_classes = len(classes)
        self.folds: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for cc in model.calibrated_classifiers_:
            est = cc.estimator
            if not hasattr(est, "coef_") or not all(isinstance(c, _SigmoidCalibration) for c in cc.calibrators):
                raise ValueError("compiled scoring needs linear estimators with sigmoid calibration")
            positions = np.array([classes.index(c) for c in est.classes_])
            coef = np.ascontiguousarray(np.asarray(est.coef_, dtype=np.float64).T)  # features x classes
            intercept = np.asarray(est.intercept_, dtype=np.float64)
            a = np.array([c.a_ for c in cc.calibrators], dtype=np.float64)
            b = np.array([c.b_ for c in cc.calibrators], dtype=np.float64)
            self.folds.append((coef, intercept, a, b, positions))

    def predict_proba(self, X: sp.spmatrix | np.ndarray) -> np.ndarray:
        return self.predict_proba_and_margin(X)[0]

    def predict_proba_and_margin(self, X: sp.spmatrix | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The probabilities, and each case's largest raw class score (the linear models' decision value,
        averaged over the folds that know the class): low when no department's words speak for the case,
        which calibration hides (`models.taxonomy_guard`)."""
        n = X.shape[0]
        mean = np.zeros((n, self.n_classes))
        raw = np.zeros((n, self.n_classes))
        seen = np.zeros(self.n_classes)
        for coef, intercept, a, b, positions in self.folds:
            scores = np.asarray(X @ coef) + intercept
            raw[:, positions] += scores
            seen[positions] += 1
            proba = np.zeros((n, self.n_classes))
            proba[:, positions] = expit(-(a * scores + b))
            denominator = proba.sum(axis=1, keepdims=True)
            proba = np.divide(proba, denominator, out=np.full_like(proba, 1 / self.n_classes),
                              where=denominator != 0)
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
            mean += proba
        raw = np.divide(raw, seen, out=np.full_like(raw, -np.inf), where=seen > 0)
        return mean / len(self.folds), raw.max(axis=1)
