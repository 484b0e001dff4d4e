"""training.evaluate: metrics worked out by hand on tiny probability arrays, and the confusion plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.evaluate import crossfit_coverage, evaluate_router, expected_calibration_error, plot_confusion


def test_expected_calibration_error_by_hand() -> None:
    classes = ["A", "B"]
    proba = np.array([[0.95, 0.05], [0.75, 0.25], [0.30, 0.70], [0.55, 0.45]])
    y = ["A", "B", "B", "A"]  # right, wrong, right, right
    # Five bins: 0.95 alone (acc 1), 0.75 and 0.70 together (acc 0.5, conf 0.725), 0.55 alone (acc 1).
    expected = 0.25 * 0.05 + 0.5 * abs(0.5 - 0.725) + 0.25 * 0.45
    assert expected_calibration_error(y, proba, classes, bins=5) == pytest.approx(expected, abs=1e-12)


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    proba = np.tile([0.8, 0.2], (10, 1))
    y = ["A"] * 8 + ["B"] * 2
    assert expected_calibration_error(y, proba, ["A", "B"]) == pytest.approx(0.0, abs=1e-12)


def test_overconfident_predictions_have_a_large_calibration_error() -> None:
    proba = np.tile([0.99, 0.01], (10, 1))
    y = ["A"] * 5 + ["B"] * 5
    assert expected_calibration_error(y, proba, ["A", "B"]) == pytest.approx(0.49, abs=1e-12)


def test_evaluate_router_metrics_and_confusion_by_hand() -> None:
    classes = ["A", "B", "C"]
    proba = np.array([
        [0.8, 0.1, 0.1],  # true A, predicted A
        [0.2, 0.7, 0.1],  # true A, predicted B
        [0.1, 0.6, 0.3],  # true B, predicted B
        [0.1, 0.1, 0.8],  # true C, predicted C
    ])
    y = ["A", "A", "B", "C"]
    ev = evaluate_router(y, proba, classes, {"A": 0.75, "B": None, "C": 0.9})
    assert ev.metrics["accuracy"] == pytest.approx(0.75)
    # F1: A = 2/3 (P 1, R 0.5), B = 2/3 (P 0.5, R 1), C = 1.
    assert ev.metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert ev.metrics["f1.C"] == pytest.approx(1.0)
    assert ev.metrics["recall.A"] == pytest.approx(0.5)
    assert ev.metrics["precision.B"] == pytest.approx(0.5)
    # Only the first case is routed (A at 0.8 >= 0.75; C at 0.8 < 0.9; B never).
    assert ev.metrics["coverage"] == pytest.approx(0.25)
    assert ev.metrics["auto_routed_precision"] == pytest.approx(1.0)
    assert ev.metrics["n_eval"] == 4
    assert ev.confusion.loc["A"].tolist() == [1, 1, 0]
    assert ev.confusion.loc["B"].tolist() == [0, 1, 0]
    assert ev.confusion.loc["C"].tolist() == [0, 0, 1]
    assert ev.per_class.loc["A", "support"] == 2
    assert list(ev.per_class.index) == classes


def test_crossfit_coverage_routes_confident_right_classes_and_holds_back_a_wrong_one() -> None:
    classes = ["A", "B", "C"]
    labels = np.array(["A", "B", "C"] * 20, dtype=object)
    proba = np.full((60, 3), 0.05)
    for i, label in enumerate(labels):
        # A and B are always predicted right at 0.9; every C case is predicted as B at 0.6.
        proba[i, classes.index(label) if label != "C" else 1] = 0.9 if label != "C" else 0.6
    proba[labels == "C", 2] = 0.35
    coverage, precision = crossfit_coverage(labels, proba, classes, 0.95, seed=0)
    # B's cases at 0.9 are all right and the 0.6 ones all wrong: the cut lands between them.
    assert coverage == pytest.approx(40 / 60)
    assert precision == pytest.approx(1.0)


def test_plot_confusion_writes_a_png(tmp_path: Path) -> None:
    confusion = pd.DataFrame([[3, 1], [0, 4]], index=["城乡建设", "环境保护"], columns=["城乡建设", "环境保护"])
    path = plot_confusion(confusion, tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
