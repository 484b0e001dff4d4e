"""Cases outside the known departments: routed as usual, but sent to a person with that reason.

The router's probabilities always sum to one over the departments it knows, so a case that belongs to
none of them (a household-registration question in a taxonomy without public security) can still be
routed with confidence; calibration spreads the probability over the known departments whatever the
case says. The raw score of the linear models behind it does not: it is the weight of the case's words
for a department, and a case none of whose words speak for any department scores low for all of them.
The guard flags a case whose largest raw class score is below a threshold chosen at training time on
out-of-fold scores of in-taxonomy cases (`flag_rate` of them fall below it).

Measured on held-out departments by `experiments/bench_out_of_taxonomy.py` (train without one department,
count its cases flagged); the largest raw score separates them better than the calibrated confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The share of in-taxonomy training cases (out of fold) the default guard sends to review.
DEFAULT_FLAG_RATE = 0.05


@dataclass(frozen=True)
class TaxonomyGuard:
    threshold: float
    flag_rate: float

    @classmethod
    def from_scores(cls, in_taxonomy_scores: np.ndarray, flag_rate: float = DEFAULT_FLAG_RATE) -> TaxonomyGuard:
        scores = np.asarray(in_taxonomy_scores, dtype=float)
        scores = scores[np.isfinite(scores)]
        threshold = float(np.quantile(scores, flag_rate)) if len(scores) and flag_rate > 0 else -np.inf
        return cls(threshold=threshold, flag_rate=flag_rate)

    def flags(self, max_scores: np.ndarray) -> np.ndarray:
        """True where a case is unlike every known department."""
        return np.asarray(max_scores, dtype=float) < self.threshold


def max_class_score(classifier: Any, features: Any) -> np.ndarray | None:
    """Each case's largest raw class score from a fitted `CalibratedClassifierCV` over linear models (the
    mean over its folds of their `decision_function`), or None for a classifier without one."""
    folds = getattr(classifier, "calibrated_classifiers_", None)
    if not folds:
        return None
    classes = list(classifier.classes_)
    n = features.shape[0]
    raw, seen = np.zeros((n, len(classes))), np.zeros(len(classes))
    for fold in folds:
        estimator = fold.estimator
        if not hasattr(estimator, "decision_function"):
            return None
        scores = np.asarray(estimator.decision_function(features))
        if scores.ndim == 1:  # a binary estimator: one column for its positive class
            return None
        positions = [classes.index(c) for c in estimator.classes_]
        raw[:, positions] += scores
        seen[positions] += 1
    raw = np.divide(raw, seen, out=np.full_like(raw, -np.inf), where=seen > 0)
    return raw.max(axis=1)
