"""Tests for models.thresholds on hand-made probability arrays whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.thresholds import RoutingCoverage, auto_routed, choose_thresholds, routing_coverage

CLASSES = ["A", "B", "C"]


def row(label: str, confidence: float) -> list[float]:
    """A probability row whose argmax is `label` with the given confidence (> 1/3), rest split evenly."""
    rest = (1.0 - confidence) / (len(CLASSES) - 1)
    assert rest < confidence
    return [confidence if c == label else rest for c in CLASSES]


def cases(*items: tuple[str, float, str]) -> tuple[list[str], np.ndarray]:
    """(predicted, confidence, true label) triples -> (y_true, proba)."""
    proba = np.array([row(pred, conf) for pred, conf, _ in items])
    return [true for _, _, true in items], proba


# -- choose_thresholds -----------------------------------------------------------------------------


def test_department_whose_confident_cases_are_right_gets_the_deepest_threshold_that_keeps_the_target() -> None:
    y, proba = cases(
        ("A", 0.95, "A"), ("A", 0.90, "A"), ("A", 0.85, "A"), ("A", 0.80, "A"), ("A", 0.70, "A"),
        ("A", 0.60, "B"),  # the first wrong one: routing down to 0.60 would give 5/6 < 0.95
    )
    th = choose_thresholds(y, proba, CLASSES, 0.95, min_support=3)
    assert th["A"] == pytest.approx(0.70)


def test_department_that_never_reaches_the_target_gets_none() -> None:
    y, proba = cases(("B", 0.90, "A"), ("B", 0.80, "B"), ("B", 0.70, "C"), ("B", 0.60, "B"))
    th = choose_thresholds(y, proba, CLASSES, 0.9, min_support=1)
    assert th["B"] is None


def test_department_that_is_never_predicted_gets_none() -> None:
    y, proba = cases(("A", 0.9, "A"), ("A", 0.8, "C"))
    th = choose_thresholds(y, proba, CLASSES, 0.5, min_support=1)
    assert th == {"A": pytest.approx(0.8), "B": None, "C": None}


def test_every_class_gets_a_key() -> None:
    y, proba = cases(("A", 0.9, "A"))
    assert set(choose_thresholds(y, proba, CLASSES, 0.9, min_support=1)) == set(CLASSES)


def test_tied_confidences_are_routed_together_or_not_at_all() -> None:
    # Cutting inside the tie at 0.80 would look perfect (2 of the 3 tied are right and come first), but a
    # threshold of 0.80 routes all three tied cases, one of them wrong: 3/4 < 0.9.
    y, proba = cases(("A", 0.90, "A"), ("A", 0.80, "A"), ("A", 0.80, "A"), ("A", 0.80, "B"))
    th = choose_thresholds(y, proba, CLASSES, 0.9, min_support=1)
    assert th["A"] == pytest.approx(0.90)
    # The same tie, all right, is routed as a whole.
    y, proba = cases(("A", 0.90, "A"), ("A", 0.80, "A"), ("A", 0.80, "A"), ("A", 0.80, "A"))
    assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=1)["A"] == pytest.approx(0.80)


def test_tie_order_in_the_input_does_not_matter() -> None:
    items = [("A", 0.90, "A"), ("A", 0.80, "B"), ("A", 0.80, "A"), ("A", 0.80, "A")]
    for perm in ([0, 1, 2, 3], [0, 2, 3, 1], [3, 2, 1, 0]):
        y, proba = cases(*(items[i] for i in perm))
        assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=1)["A"] == pytest.approx(0.90)


def test_min_support_counts_the_cases_at_or_above_the_threshold() -> None:
    y, proba = cases(("C", 0.99, "C"), ("C", 0.98, "C"), ("C", 0.97, "C"), ("C", 0.96, "C"))
    assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=5)["C"] is None
    assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=4)["C"] == pytest.approx(0.96)
    # With support 2 the deepest cut is still the whole (all right) set.
    assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=2)["C"] == pytest.approx(0.96)


def test_thresholds_never_go_below_min_threshold() -> None:
    y, proba = cases(("A", 0.45, "A"), ("A", 0.40, "A"), ("A", 0.38, "A"))
    assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=1, min_threshold=0.5)["A"] is None
    assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=1, min_threshold=0.4)["A"] == pytest.approx(0.40)


def test_a_prefix_may_dip_below_target_when_the_whole_routed_set_keeps_it() -> None:
    # The most confident case is wrong; with nine right ones below it the set at >= 0.82 is 9/10 = 0.9.
    items = [("A", 0.99, "B")] + [("A", 0.90 - i * 0.01, "A") for i in range(9)] + [("A", 0.60, "B")]
    y, proba = cases(*items)
    assert choose_thresholds(y, proba, CLASSES, 0.9, min_support=1)["A"] == pytest.approx(0.82)


def test_chosen_thresholds_keep_the_target_precision_on_the_data_they_were_chosen_on() -> None:
    rng = np.random.default_rng(0)
    n = 600
    logits = rng.normal(size=(n, 3)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    # The true label agrees with the prediction more often when the model is more confident.
    right = rng.random(n) < proba.max(axis=1)
    y = np.where(right, pred, (pred + 1) % 3)
    labels = [CLASSES[i] for i in y]
    th = choose_thresholds(labels, proba, CLASSES, 0.9, min_support=10)
    assert any(v is not None for v in th.values())
    routed = auto_routed(proba, CLASSES, th)
    for k, c in enumerate(CLASSES):
        mine = routed & (pred == k)
        if th[c] is None:
            assert not mine.any()
        else:
            assert mine.sum() >= 10
            assert (y[mine] == k).mean() >= 0.9


# -- auto_routed / routing_coverage ----------------------------------------------------------------


@pytest.fixture
def routed_example() -> tuple[list[str], np.ndarray, dict[str, float | None]]:
    y, proba = cases(
        ("A", 0.95, "A"),  # A above its 0.7 threshold: routed, right
        ("A", 0.65, "A"),  # A below 0.7: review
        ("B", 0.99, "B"),  # B has no threshold: always review
        ("C", 0.60, "A"),  # C above 0.5: routed, wrong
        ("C", 0.50, "C"),  # exactly at C's threshold: routed, right
    )
    return y, proba, {"A": 0.7, "B": None, "C": 0.5}


def test_auto_routed_marks_cases_at_or_above_their_department_threshold(routed_example) -> None:
    _, proba, th = routed_example
    assert auto_routed(proba, CLASSES, th).tolist() == [True, False, False, True, True]


def test_auto_routed_treats_a_missing_department_like_none(routed_example) -> None:
    _, proba, _ = routed_example
    assert auto_routed(proba, CLASSES, {"A": 0.7}).tolist() == [True, False, False, False, False]


def test_routing_coverage_computed_by_hand(routed_example) -> None:
    y, proba, th = routed_example
    cov = routing_coverage(y, proba, CLASSES, th)
    assert cov == RoutingCoverage(coverage=3 / 5, precision=2 / 3, routed=3, total=5)


def test_routing_coverage_with_nothing_routed_has_nan_precision(routed_example) -> None:
    y, proba, _ = routed_example
    cov = routing_coverage(y, proba, CLASSES, {"A": None, "B": None, "C": None})
    assert (cov.coverage, cov.routed, cov.total) == (0.0, 0, 5)
    assert math.isnan(cov.precision)


def test_routing_coverage_of_no_cases() -> None:
    cov = routing_coverage([], np.zeros((0, 3)), CLASSES, {"A": 0.5, "B": 0.5, "C": 0.5})
    assert (cov.coverage, cov.routed, cov.total) == (0.0, 0, 0)
