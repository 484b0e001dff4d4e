"""Cases outside the known departments: routed as usual, but sent to a person with that reason.

The router's probabilities always sum to one over the departments it knows, so a case that belongs to
none of them (a household-registration question in a taxonomy without public security) can still be
routed with confidence; calibration spreads the probability over the known departments whatever the
case says. The raw score of the linear models behind it does not: it is the weight of the case's words
for a department, and a case none of whose words speak for any department scores low for all of them.

The guard flags a case whose largest raw class score is below a threshold chosen at training time on
out-of-fold scores of in-taxonomy cases, so that `flag_rate` of them are flagged. It combines that score
with the router's own decision: most cases with a low raw score are below their department's confidence
threshold too and reach review anyway, so a guard that flags the lowest scores alone spends nearly all of
its budget where it changes nothing (measured: 4.3% of known cases flagged, 0.4% sent to review because of
it). A guard ``for_routed`` (every guard trained since bundle format 4) spends its budget where it does:
a tenth of it (`CLEAR_SHARE`) on the lowest scores whatever the confidence, so the clearest new cases keep
the reason, and the rest on cases the department thresholds would have let through.

Measured on held-out departments by `experiments/bench_out_of_taxonomy.py` (train without one department,
count its cases flagged and reviewed). Other second signals were measured with that protocol and add
nothing worth their cost beyond the raw score (see the benchmark's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The share of in-taxonomy training cases (out of fold) the default guard sends to review.
DEFAULT_FLAG_RATE = 0.05
#: The part of a guard's flag budget spent on the lowest raw scores whatever the confidence (the clearest
#: new cases, flagged with the reason even where the thresholds send them to review anyway). A tenth: on
#: held-out departments 0.5% of known cases flag 21% of the unseen department's cases this way, for 0.9
#: points of the share reviewed (the rest of the budget catches cases the thresholds let through).
CLEAR_SHARE = 0.1


@dataclass(frozen=True)
class TaxonomyGuard:
    #: Cases scoring below it are flagged whatever their confidence.
    threshold: float
    flag_rate: float
    #: Cases the department thresholds let through (`let_through`) scoring below it are flagged too; None in
    #: guards trained before it existed (bundle format < 4), which flag on `threshold` alone.
    routed_threshold: float | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Frozen: pickle's default restores ``__dict__`` directly; an older guard lacks the newer field.
        self.__dict__.update({"routed_threshold": None, **state})

    @classmethod
    def from_scores(
        cls,
        in_taxonomy_scores: np.ndarray,
        flag_rate: float = DEFAULT_FLAG_RATE,
        *,
        routed: np.ndarray | None = None,
    ) -> TaxonomyGuard:
        """The guard that flags ``flag_rate`` of the in-taxonomy (out-of-fold) scores given.

        ``routed``: which of those cases the department thresholds let through (`let_through` on the same
        out-of-fold probabilities). With it, `CLEAR_SHARE` of the budget goes to the lowest scores and the
        rest to the lowest among the cases let through; without it, all of it to the lowest scores (the
        guard before bundle format 4)."""
        scores = np.asarray(in_taxonomy_scores, dtype=float)
        finite = np.isfinite(scores)
        if not finite.any() or flag_rate <= 0:
            return cls(threshold=-np.inf, flag_rate=flag_rate, routed_threshold=None if routed is None else -np.inf)
        if routed is None:
            return cls(threshold=float(np.quantile(scores[finite], flag_rate)), flag_rate=flag_rate)
        routed = np.asarray(routed, dtype=bool)
        scores, routed = scores[finite], routed[finite]
        threshold = float(np.quantile(scores, CLEAR_SHARE * flag_rate))
        # What the clear threshold leaves of the budget, taken among routed cases it does not flag already.
        remaining = flag_rate * len(scores) - np.count_nonzero(scores < threshold)
        candidates = scores[routed & (scores >= threshold)]
        if remaining <= 0 or not len(candidates):
            routed_threshold = threshold
        elif remaining >= len(candidates):
            routed_threshold = float(np.inf)
        else:
            routed_threshold = float(np.quantile(candidates, remaining / len(candidates)))
        return cls(threshold=threshold, flag_rate=flag_rate, routed_threshold=max(routed_threshold, threshold))

    def flags(self, max_scores: np.ndarray, routed: np.ndarray | None = None) -> np.ndarray:
        """True where a case is unlike every known department. ``routed``: which cases the department
        thresholds let through (`let_through`); required by a guard with a `routed_threshold`."""
        scores = np.asarray(max_scores, dtype=float)
        flagged = scores < self.threshold
        if self.routed_threshold is not None:
            if routed is None:
                raise ValueError("this taxonomy guard needs which cases the department thresholds let through")
            flagged |= np.asarray(routed, dtype=bool) & (scores < self.routed_threshold)
        return flagged

    def describe(self) -> dict[str, Any]:
        """What the model's metadata records of the guard."""
        described: dict[str, Any] = {"threshold": self.threshold, "flag_rate": self.flag_rate}
        if self.routed_threshold is not None:
            described["routed_threshold"] = self.routed_threshold
        return described


def let_through(proba: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Which cases the department thresholds route without review: the top department's probability at or
    above its threshold (``limits`` in class order, inf for a department always reviewed). The same test as
    `models.bundle.TriageBundle.routes_from_proba` (ties: the first department, as its stable sort)."""
    if not len(proba):
        return np.zeros(0, dtype=bool)
    return proba.max(axis=1) >= limits[proba.argmax(axis=1)]  # two reductions: ~5 us for one case


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
