"""Per-department confidence thresholds that let a case be routed without a person.

Chosen on out-of-fold probabilities (never on the data the model was fitted on) so that, for each
department, the cases routed automatically reach the target precision; the rest go to review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RoutingCoverage:
    coverage: float  # share of cases routed automatically
    precision: float  # accuracy among those cases (nan when none)
    routed: int
    total: int


def choose_thresholds(
    y_true: Sequence[str],
    proba: np.ndarray,
    classes: Sequence[str],
    target_precision: float,
    *,
    min_threshold: float = 0.5,
    min_support: int = 5,
) -> dict[str, float | None]:
    """For each department, the lowest confidence at which routed cases keep `target_precision`.

    The precision is taken over all cases predicted as the department with confidence at or above the
    threshold. A department with fewer than `min_support` such cases, or none that reach the target,
    gets ``None``: its cases always go to review.
    """
    y = np.asarray(y_true, dtype=object)
    pred_idx = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    thresholds: dict[str, float | None] = {}
    for k, label in enumerate(classes):
        mask = pred_idx == k
        order = np.argsort(-conf[mask], kind="stable")
        c = conf[mask][order]
        correct = (y[mask][order] == label).astype(float)
        if c.size == 0:
            thresholds[label] = None
            continue
        precision_at = np.cumsum(correct) / np.arange(1, c.size + 1)
        # Only cut between distinct confidence values: ties are routed together or not at all.
        last_of_tie = np.r_[c[1:] != c[:-1], True]
        ok = (precision_at >= target_precision) & last_of_tie & (np.arange(1, c.size + 1) >= min_support)
        ok &= c >= min_threshold
        if not ok.any():
            thresholds[label] = None
            continue
        # The deepest cut that keeps the target: every prefix up to it may dip, the whole set may not.
        cut = int(np.flatnonzero(ok).max())
        thresholds[label] = float(c[cut])
    return thresholds


def auto_routed(
    proba: np.ndarray, classes: Sequence[str], thresholds: dict[str, float | None]
) -> np.ndarray:
    """Boolean mask of the cases confident enough to route without review."""
    limits = np.array(
        [np.inf if thresholds.get(c) is None else thresholds[c] for c in classes], dtype=float
    )
    pred_idx = proba.argmax(axis=1)
    return proba.max(axis=1) >= limits[pred_idx]


def routing_coverage(
    y_true: Sequence[str],
    proba: np.ndarray,
    classes: Sequence[str],
    thresholds: dict[str, float | None],
) -> RoutingCoverage:
    y = np.asarray(y_true, dtype=object)
    routed = auto_routed(proba, classes, thresholds)
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    n = int(routed.sum())
    precision = float((pred[routed] == y[routed]).mean()) if n else float("nan")
    return RoutingCoverage(coverage=n / len(y) if len(y) else 0.0, precision=precision, routed=n, total=len(y))
