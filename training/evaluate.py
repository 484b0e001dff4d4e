"""Router evaluation: the metrics, tables and plots a data scientist compares runs by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import StratifiedKFold

from models.thresholds import choose_thresholds, routing_coverage


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_class: pd.DataFrame  # precision / recall / f1 / support per department
    confusion: pd.DataFrame  # rows: true department, columns: predicted


def expected_calibration_error(
    y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str], bins: int = 15
) -> float:
    """Top-label ECE: how far the stated confidence is from the observed accuracy, weighted by bin size."""
    y = np.asarray(y_true, dtype=object)
    conf = proba.max(axis=1)
    correct = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def evaluate_router(
    y_true: Sequence[str],
    proba: np.ndarray,
    classes: Sequence[str],
    thresholds: dict[str, float | None],
) -> Evaluation:
    y = np.asarray(y_true, dtype=object)
    labels = list(classes)
    pred = np.asarray(labels, dtype=object)[proba.argmax(axis=1)]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    per_class = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s}, index=labels)
    per_class.index.name = "department"
    cov = routing_coverage(y, proba, labels, thresholds)
    metrics: dict[str, float] = {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "ece": expected_calibration_error(y, proba, labels),
        "coverage": cov.coverage,
        "auto_routed_precision": cov.precision,
        "n_eval": float(len(y)),
    }
    for label, row in per_class.iterrows():
        for name in ("precision", "recall", "f1"):
            metrics[f"{name}.{label}"] = float(row[name])
    confusion = pd.DataFrame(confusion_matrix(y, pred, labels=labels), index=labels, columns=labels)
    return Evaluation(metrics, per_class, confusion)


def crossfit_coverage(
    y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str], target_precision: float, seed: int,
    min_threshold: float = 0.5,
) -> tuple[float, float]:
    """Coverage and precision when thresholds chosen on one half of the predictions are applied to the other.

    Choosing and measuring on the same cases would flatter the thresholds; crossing the halves does not.
    """
    y = np.asarray(y_true, dtype=object)
    routed = correct = 0
    for choose_idx, apply_idx in StratifiedKFold(2, shuffle=True, random_state=seed).split(proba, y):
        th = choose_thresholds(y[choose_idx], proba[choose_idx], classes, target_precision, min_threshold=min_threshold)
        cov = routing_coverage(y[apply_idx], proba[apply_idx], classes, th)
        routed += cov.routed
        correct += 0 if cov.routed == 0 else round(cov.precision * cov.routed)
    return routed / len(y), (correct / routed if routed else float("nan"))


def _cjk_font() -> str | None:
    from matplotlib import font_manager

    wanted = ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Source Han Sans SC", "SimHei")
    have = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in wanted if name in have), None)


def plot_confusion(confusion: pd.DataFrame, path: Path, title: str = "Router confusion matrix") -> Path:
    """Confusion matrix as PNG. Without a CJK font the axes show D1…Dn and the legend the mapping."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = _cjk_font()
    labels = list(confusion.index)
    ticks = labels if font else [f"D{i + 1}" for i in range(len(labels))]
    with matplotlib.rc_context({"font.sans-serif": [font, "DejaVu Sans"] if font else ["DejaVu Sans"]}):
        fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.0 * len(labels) + 2))
        values = confusion.to_numpy()
        ax.imshow(values, cmap="Blues")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > values.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), ticks, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), ticks)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return path
