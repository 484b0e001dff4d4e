"""`triage retrain` (issue 17, item 5): export reviews, retrain on history + reviews, promote only through the
gate, record the outcome where the dashboard reads it. The demo cases: 80% are the history, 20% reviewed in
an audit store (reviewers' labels are the demo's labels)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from models.mlflow_model import CHAMPION, MODEL_NAME
from models.tracking import RETRAINING_EXPERIMENT, latest_run
from store import CaseInput, PredictionInput, Store, upgrade_database
from tests.mlflow_env import isolated_mlflow
from training.config import TrainConfig
from training.retrain import FAILED, PROMOTED, REFUSED, gate_side, retrain, split_reviews
from training.splitting import train_test_split_grouped
from training.train import TRAINING_CASE_IDS_ARTIFACT, train


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with isolated_mlflow(tmp_path_factory.mktemp("mlflow-retrain")) as home:
        yield home


@pytest.fixture(scope="module")
def history_and_reviewed(demo_cases: pd.DataFrame, fast_config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    return train_test_split_grouped(demo_cases, 0.2, fast_config.seed + 2)


@pytest.fixture(scope="module")
def history_csv(history_and_reviewed: tuple[pd.DataFrame, pd.DataFrame], mlflow_home: Path) -> Path:
    path = mlflow_home / "history.csv"
    history_and_reviewed[0][["case_id", "title", "body", "created_at", "department", "risk_level"]].to_csv(
        path, index=False)
    return path


def reviewed_store(url: str, reviewed: pd.DataFrame) -> None:
    """Each case triaged (a placeholder prediction) and reviewed with its demo labels."""
    upgrade_database(url)
    store = Store.from_url(url)
    try:
        for row in reviewed.itertuples():
            record = store.record_case_and_prediction(
                CaseInput(row.case_id, row.title, row.body),
                PredictionInput(model_name=MODEL_NAME, model_version="1", department="城乡建设",
                                department_confidence=0.5, needs_review=True, top=[], risk_level="green"),
            )
            store.add_review(row.case_id, record.id, "reviewer-li", decided_department=row.department,
                             decided_level=row.risk_level)
    finally:
        store.dispose()


def test_the_gate_share_is_a_stable_function_of_the_case_id() -> None:
    frame = pd.DataFrame({"case_id": [f"YC{i:06d}" for i in range(2000)]})
    to_train, to_judge = split_reviews(frame, 0.3)
    assert len(to_train) + len(to_judge) == 2000 and 0.25 < len(to_judge) / 2000 < 0.35
    again = split_reviews(frame.sample(frac=1, random_state=1), 0.3)[1]
    assert set(again["case_id"]) == set(to_judge["case_id"])
    assert all(gate_side(c, 0.3) for c in to_judge["case_id"])


@pytest.mark.slow
def test_retraining_trains_on_reviews_judges_on_the_gate_share_and_records_the_outcome(
    mlflow_home: Path, history_csv: Path, history_and_reviewed: tuple[pd.DataFrame, pd.DataFrame],
    fast_config: TrainConfig, tmp_path: Path,
) -> None:
    first = train([history_csv], fast_config)  # the champion the run must get past
    assert first.alias == CHAMPION
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    reviewed = history_and_reviewed[1]
    reviewed_store(url, reviewed)
    work = tmp_path / "retrain"
    outcome = retrain([history_csv], url, fast_config, work_dir=work, min_cases=20)

    assert outcome.status in (PROMOTED, REFUSED), outcome.reason
    assert outcome.n_reviews == len(reviewed) == outcome.n_train_reviews + outcome.n_gate_reviews
    assert outcome.candidate_version == str(int(first.model_version) + 1)
    assert outcome.champion_before == first.model_version
    client = mlflow.MlflowClient()
    champion = str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    assert outcome.champion_after == champion
    assert champion == (outcome.candidate_version if outcome.status == PROMOTED else first.model_version)
    # The candidate trained on the reviews outside the gate share (but those training holds out to evaluate) and
    # on none inside it.
    local = mlflow.artifacts.download_artifacts(run_id=outcome.train_run_id,
                                                artifact_path=TRAINING_CASE_IDS_ARTIFACT, dst_path=str(tmp_path))
    trained_ids = set(gzip.decompress(Path(local).read_bytes()).decode("utf-8").split())
    gate_ids = {c for c in reviewed["case_id"] if gate_side(c, 0.3)}
    assert gate_ids and not gate_ids & trained_ids
    outside = set(reviewed["case_id"]) - gate_ids
    assert len(outside & trained_ids) >= 0.6 * len(outside)
    # The promotion run judged on the gate cases; the outcome is in MLflow and in last-run.json.
    promotion = mlflow.get_run(outcome.promotion_run_id)
    assert int(float(promotion.data.metrics["n_eval"])) == len(gate_ids)
    assert "candidate_red_precision" in promotion.data.metrics or promotion.data.metrics["n_red"] == 0
    latest = latest_run(RETRAINING_EXPERIMENT)
    assert latest is not None and latest["run_id"] == outcome.run_id and latest["status"] == outcome.status
    assert json.loads((work / "last-run.json").read_text("utf-8"))["status"] == outcome.status

    from serving.retrain_status import last_retraining

    shown, error = last_retraining(max_age=0)
    assert error is None and shown is not None
    assert shown["status"] == outcome.status and shown["candidate_version"] == outcome.candidate_version


@pytest.mark.slow
def test_a_run_without_reviews_fails_saying_why_and_is_recorded(
    mlflow_home: Path, history_csv: Path, fast_config: TrainConfig, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade_database(url)
    outcome = retrain([history_csv], url, fast_config, work_dir=tmp_path / "retrain")
    assert outcome.status == FAILED and "holds no reviews" in outcome.reason
    latest = latest_run(RETRAINING_EXPERIMENT)
    assert latest is not None and latest["status"] == FAILED and latest["run_id"] == outcome.run_id
