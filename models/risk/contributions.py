"""A case's per-feature contributions (LightGBM ``pred_contrib``), computed before its burst is known and
brought up to date once it is.

Why: reasons need TreeSHAP contributions, about 0.23 ms a case over the risk model's 600 trees, and the
service used to compute them after the hot-issue detector placed the case, inside the transaction that
every replica waits for. Only the trees that split on a burst column depend on the burst (7 of 600 in the
production-recipe model), and TreeSHAP is a sum over trees. So the contributions are computed with the
bursts the inputs hold (zero before the detector), and then, for each case whose bursts changed, the
iterations holding such trees are added at the new values and taken away at the old ones. The result equals
a fresh ``pred_contrib`` to rounding (a few 1e-16).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import lightgbm
import numpy as np


def contributions(booster: lightgbm.Booster, X: np.ndarray, classes: int, threads: int = 1) -> np.ndarray:
    """``pred_contrib`` as (cases, classes, features + 1): each class's contributions, then its bias."""
    shape = (len(X), classes, X.shape[1] + 1)
    if not len(X):
        return np.zeros(shape)
    return np.asarray(booster.predict(X, pred_contrib=True, num_threads=threads)).reshape(shape)


def iterations_using(booster: lightgbm.Booster, columns: Iterable[int]) -> tuple[int, ...]:
    """The boosting iterations with a tree that splits on any of ``columns``."""
    wanted = set(columns)
    model = booster.dump_model()
    per_iteration = int(model["num_tree_per_iteration"])
    found: set[int] = set()
    for t, tree in enumerate(model["tree_info"]):
        stack: list[dict[str, Any]] = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" not in node:
                continue
            if node["split_feature"] in wanted:
                found.add(t // per_iteration)
                break
            stack += [node["left_child"], node["right_child"]]
    return tuple(sorted(found))


def moved(
    booster: lightgbm.Booster,
    contrib: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    columns: Sequence[int],
    iterations: Sequence[int],
) -> np.ndarray:
    """``contrib`` (of the rows ``before``) for the rows ``after``, which differ from them only in
    ``columns``, the only columns the trees of ``iterations`` (and no other tree) split on."""
    rows = np.flatnonzero((before[:, columns] != after[:, columns]).any(axis=1))
    if not len(rows) or not iterations:
        return contrib
    out = contrib.copy()
    both = np.vstack([after[rows], before[rows]])
    n = len(rows)
    for i in iterations:
        part = np.asarray(booster.predict(both, pred_contrib=True, start_iteration=i, num_iteration=1))
        part = part.reshape(2 * n, *contrib.shape[1:])
        out[rows] += part[:n] - part[n:]
    return out
