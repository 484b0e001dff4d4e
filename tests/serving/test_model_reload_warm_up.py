"""`warm_up` takes the service's path, so a first request after a start or a reload builds nothing."""

from __future__ import annotations

import pickle

from models.bundle import TriageBundle
from models.mlflow_model import LoadedModel
from serving.model_reload import warm_up


def test_warm_up_finds_the_trees_that_read_bursts_before_any_request(demo_bundle_with_risk: TriageBundle) -> None:
    """Found once (about 80 ms for the production model), at warm-up, not in a first request's transaction."""
    bundle = pickle.loads(pickle.dumps(demo_bundle_with_risk))  # as loaded: nothing cached yet
    assert "_burst_iterations_cache" not in bundle.risk.__dict__
    warm_up(LoadedModel(bundle, "memory"))
    assert "_burst_iterations_cache" in bundle.risk.__dict__


def test_warm_up_unpacks_the_terms_reasons_quote(demo_bundle_with_risk: TriageBundle) -> None:
    """A loaded model keeps the text scorer's terms joined (batch never reads them); a service splits them at
    warm-up, so its first red or yellow case does not."""
    bundle = pickle.loads(pickle.dumps(demo_bundle_with_risk))
    scorer = bundle.risk.text_scorer_
    assert "terms_" not in scorer.__dict__
    warm_up(LoadedModel(bundle, "memory"))
    assert "terms_" in scorer.__dict__
    assert list(scorer.terms_) == list(demo_bundle_with_risk.risk.text_scorer_.terms_)
