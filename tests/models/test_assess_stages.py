"""`TriageBundle.assess` is `pending` then `finish`: batch scoring runs the first in workers and the second
(after the hot-issue replay) in one process, so the two must give exactly what `assess` gives."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from models.bundle import ReplayedBurst, TriageBundle
from models.risk import BURST_COLUMNS


@pytest.fixture(scope="module")
def cases(demo_cases: pd.DataFrame) -> list[tuple[str, str]]:
    picked = demo_cases[demo_cases["risk_level"].isin(["red", "yellow"])].head(12)
    return [*zip(picked["title"], picked["body"], strict=True), ("路灯坏了", "")]


def bursts_for(n: int) -> list[ReplayedBurst | None]:
    """Every other case in a growing burst; the rest in none."""
    return [
        ReplayedBurst(dict(zip(BURST_COLUMNS, (i + 2.0, i + 1.0, 2.0, 1.5, 0.0), strict=True)), f"HI-{i}")
        if i % 2 == 0 else None
        for i in range(n)
    ]


@pytest.mark.parametrize("reasons", [True, False])
def test_pending_then_finish_equals_assess(
    demo_bundle_with_risk: TriageBundle, cases: list[tuple[str, str]], reasons: bool
) -> None:
    bundle = demo_bundle_with_risk
    bursts = bursts_for(len(cases))
    whole = bundle.assess(cases, bursts=bursts, reasons=reasons)
    # Through a pickle, as a worker sends it back.
    pending = pickle.loads(pickle.dumps(bundle.pending(cases, reasons=reasons)))
    staged = bundle.finish(pending, bursts=bursts, reasons=reasons)
    assert [a.route.label for a in staged] == [a.route.label for a in whole]
    assert [a.risk for a in staged] == [a.risk for a in whole]  # level, probabilities and reasons
    assert [a.hot_issue_id for a in staged] == [b.hot_issue_id if b else None for b in bursts]
    if reasons:
        assert any(a.risk.reasons for a in staged)


def test_a_batch_read_at_once_finishes_case_by_case_as_each_case_read_alone(
    demo_bundle_with_risk: TriageBundle, cases: list[tuple[str, str]]
) -> None:
    """The service reads a call's cases together, then finishes each as the detector places it."""
    bundle = demo_bundle_with_risk
    bursts = bursts_for(len(cases))
    parts = bundle.pending(cases).parts()
    assert len(parts) == len(cases)
    for case, part, burst in zip(cases, parts, bursts, strict=True):
        alone = bundle.pending([case])
        assert (part.risk.X == alone.risk.X).all() and part.risk.matches == alone.risk.matches
        assert part.risk.texts == alone.risk.texts and part.risk.docs == alone.risk.docs
        # The text score's terms a red or yellow case's reasons read again: the case's own row of the batch.
        assert part.risk.terms is not None and alone.risk.terms is not None
        (mine,), (own,) = part.risk.terms, alone.risk.terms
        assert mine.indices.tolist() == own.indices.tolist() and mine.weights.tolist() == own.weights.tolist()
        (finished,) = bundle.finish(part, bursts=[burst])
        assert finished == bundle.assess([case], bursts=[burst])[0]


def test_bursts_set_at_finish_change_the_levels_as_bursts_given_to_assess_do(
    demo_bundle_with_risk: TriageBundle, cases: list[tuple[str, str]]
) -> None:
    bundle = demo_bundle_with_risk
    pending = bundle.pending(cases, reasons=False)
    without = [a.risk.probabilities for a in bundle.finish(pending, reasons=False)]
    placed = [a.risk.probabilities for a in bundle.finish(pending, bursts=bursts_for(len(cases)), reasons=False)]
    assert without == [a.risk.probabilities for a in bundle.assess(cases, reasons=False)]
    assert placed != without  # the burst columns were read, not left at zero
    # finish never changes the pending inputs: finishing again without bursts gives the first answer
    assert [a.risk.probabilities for a in bundle.finish(pending, reasons=False)] == without


def test_levels_only_inputs_refuse_reasons(demo_bundle_with_risk: TriageBundle, cases: list[tuple[str, str]]) -> None:
    pending = demo_bundle_with_risk.pending(cases, reasons=False)
    with pytest.raises(ValueError, match="levels only"):
        demo_bundle_with_risk.finish(pending, reasons=True)
    with pytest.raises(ValueError, match="one burst"):
        demo_bundle_with_risk.finish(pending, bursts=[None], reasons=False)


@pytest.mark.parametrize("reasons", [True, False])
def test_a_large_batch_is_read_in_parts_with_the_same_result(
    demo_bundle_with_risk: TriageBundle, cases: list[tuple[str, str]], reasons: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pending` reads at most `PENDING_BATCH` cases at once (a Dask part of 20,000 took a worker to 2 GB);
    the parts joined must be what one read of the batch gives."""
    import numpy as np

    import models.bundle as bundle_module

    bundle = demo_bundle_with_risk
    whole = bundle.pending(cases, reasons=reasons)
    monkeypatch.setattr(bundle_module, "PENDING_BATCH", 5)
    parts = bundle.pending(cases, reasons=reasons)
    routes = bundle.route(cases)
    given = bundle.pending(cases, routes=routes, reasons=reasons)
    for staged in (parts, given):
        assert [(r.label, r.confidence, r.needs_review) for r in staged.routes] == [
            (r.label, r.confidence, r.needs_review) for r in whole.routes
        ]
        np.testing.assert_array_equal(staged.risk.X, whole.risk.X)
        assert staged.risk.texts == whole.risk.texts and staged.risk.matches == whole.risk.matches
    bursts = bursts_for(len(cases))
    assert [a.risk for a in bundle.finish(parts, bursts=bursts, reasons=reasons)] == [
        a.risk for a in bundle.finish(whole, bursts=bursts, reasons=reasons)
    ]


def test_contributions_read_before_the_bursts_give_the_same_answers(
    demo_bundle_with_risk: TriageBundle, cases: list[tuple[str, str]]
) -> None:
    """The service reads the reasons' contributions with the cases, before the detector's transaction, and
    only updates them for the trees that read bursts: levels and reasons as if computed at the end."""
    bundle = demo_bundle_with_risk
    bursts = bursts_for(len(cases))
    early = bundle.pending(cases, contributions=True)
    assert early.risk is not None and early.risk.contrib is not None
    assert [p.risk.contrib.shape[0] for p in early.parts()] == [1] * len(cases)
    staged = bundle.finish(early, bursts=bursts)
    whole = bundle.finish(bundle.pending(cases), bursts=bursts)
    for a, b in zip(staged, whole, strict=True):
        assert a.risk.level == b.risk.level
        assert a.risk.probabilities == pytest.approx(b.risk.probabilities, abs=1e-12)
        assert [(r.kind, r.text, r.criterion, r.feature) for r in a.risk.reasons] == [
            (r.kind, r.text, r.criterion, r.feature) for r in b.risk.reasons]
    assert any(a.risk.reasons for a in staged)
    # Levels-only inputs (batch scoring's) never carry contributions.
    assert bundle.pending(cases, reasons=False, contributions=True).risk.contrib is None
