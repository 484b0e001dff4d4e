"""Decision bands: thresholds on P(red) and P(red) + P(yellow), chosen on out-of-fold predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from features.risk_cues import LEVELS
from models.risk.params import RiskParams


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

