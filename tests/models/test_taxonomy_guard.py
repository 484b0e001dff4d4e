"""Cases of a department the model never saw go to review as out of taxonomy (issue 14, item 7).

A model is trained on the demo file without one department, the way `triage train` trains; that
department's cases then stand for a new kind of case. They must be flagged far more often than held-out
cases of the known departments, reach a person with the reason `out_of_taxonomy`, and the guard's
scores must be the same whichever scorer (compiled or sklearn) computes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.bundle import TriageBundle
from models.taxonomy_guard import TaxonomyGuard, max_class_score
from serving.app import create_app
from serving.settings import Settings
from tests.keys import INTAKE, REVIEWER
from tests.mlflow_env import isolated_mlflow
from training.config import TrainConfig
from training.train import INPUT_COLUMNS, TrainResult, train

pytestmark = pytest.mark.slow
NEW_KIND = "教育文体"


@pytest.fixture(scope="module")
def without_one(demo_csv: Path, fast_config: TrainConfig,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TrainResult, pd.DataFrame, pd.DataFrame]]:
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    known, unknown = frame[frame["department"] != NEW_KIND], frame[frame["department"] == NEW_KIND]
    folder = tmp_path_factory.mktemp("guard")
    known.to_csv(folder / "known.csv", index=False)
    with isolated_mlflow(folder):
        result = train([folder / "known.csv"], fast_config)
    yield result, known, unknown


def test_the_guard_is_trained_with_the_model(without_one) -> None:
    result, _, _ = without_one
    guard = result.bundle.taxonomy_guard
    assert isinstance(guard, TaxonomyGuard) and guard.flag_rate == 0.05 and np.isfinite(guard.threshold)
    assert result.bundle.metadata["taxonomy_guard"] == {"threshold": guard.threshold, "flag_rate": 0.05}
    assert 0.0 <= result.evaluation.metrics["out_of_taxonomy_rate"] <= 0.2


def test_cases_of_an_unseen_department_go_to_review_as_out_of_taxonomy(without_one) -> None:
    result, known, unknown = without_one
    bundle = result.bundle
    unseen = bundle.route(unknown[INPUT_COLUMNS])
    seen = bundle.route(known[INPUT_COLUMNS].sample(n=len(unknown), random_state=1))
    unseen_rate = np.mean([r.out_of_taxonomy for r in unseen])
    seen_rate = np.mean([r.out_of_taxonomy for r in seen])
    assert unseen_rate >= 0.2 and unseen_rate >= 5 * max(seen_rate, 0.02), (unseen_rate, seen_rate)
    assert all(r.needs_review for r in unseen if r.out_of_taxonomy)


def test_compiled_and_sklearn_scorers_agree_on_the_guard_score(without_one) -> None:
    result, _, unknown = without_one
    bundle: TriageBundle = result.bundle
    features = bundle.router[:-1].transform(unknown[INPUT_COLUMNS].head(40))
    compiled = bundle._compiled()
    assert compiled is not None
    _, fast = compiled.predict_proba_and_margin(features)
    np.testing.assert_allclose(fast, max_class_score(bundle.router[-1], features), rtol=1e-9, atol=1e-9)


def test_the_api_says_why_a_case_needs_review(without_one, tmp_path: Path) -> None:
    result, _, unknown = without_one
    result.bundle.save(tmp_path / "bundle")
    settings = Settings(model_uri=str(tmp_path / "bundle"), database_url=f"sqlite:///{tmp_path / 't.db'}")
    scores = max_class_score(result.bundle.router[-1],
                             result.bundle.router[:-1].transform(unknown[INPUT_COLUMNS]))
    case = unknown.iloc[int(np.argmin(scores))]  # the most clearly unknown one
    with TestClient(create_app(settings), headers=INTAKE) as client:
        answer = client.post("/v1/triage", json={"case_id": "NEW-KIND-1", "title": case["title"],
                                                 "body": case["body"]}).json()
        assert answer["department"]["needs_review"] is True
        assert answer["department"]["review_reason"] == "out_of_taxonomy"
        again = client.post("/v1/triage", json={"case_id": "NEW-KIND-1", "title": case["title"],
                                                "body": case["body"]}).json()
        assert again["department"]["review_reason"] == "out_of_taxonomy"  # rebuilt from the audit trail
        page = client.get("/review/cases/NEW-KIND-1", headers=REVIEWER)
        assert page.status_code == 200 and 'id="out-of-taxonomy"' in page.text  # the reviewer sees why
