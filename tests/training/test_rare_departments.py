"""A new city's taxonomy has rare departments: training must succeed, route them, and send them to review."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd

from tests.mlflow_env import isolated_mlflow
from training.config import TrainConfig
from training.train import train

DEMO_CSV = Path(__file__).resolve().parents[2] / "training" / "demo_data" / "grievances.csv"


def test_departments_with_a_handful_of_cases_train_route_and_go_to_review(tmp_path: Path) -> None:
    demo = pd.read_csv(DEMO_CSV, dtype=str, keep_default_na=False)
    rare = {"交通运输": 7, "卫生计生": 9}
    parts = [g.head(rare[d]) if d in rare else g for d, g in demo.groupby("department")]
    source = tmp_path / "new_city.csv"
    pd.concat(parts).to_csv(source, index=False)
    (tmp_path / "mlflow").mkdir()
    with isolated_mlflow(tmp_path / "mlflow"):
        # The default config: 5 threshold folds, 5 calibration folds (it had raised "Requesting 5-fold
        # cross-validation but provided less than 5 examples for at least one class").
        result = train([source], TrainConfig())
        artefacts = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, dst_path=str(tmp_path / "a")))
    report = json.loads(next(artefacts.rglob("data_report.json")).read_text(encoding="utf-8"))["departments"]
    assert set(rare) <= set(report["rare"]) and report["rare_below"] == 10
    assert set(report["always_reviewed"]) >= {d for d in rare if result.bundle.thresholds[d] is None}
    bundle = result.bundle
    assert set(rare) <= set(bundle.classes)  # still routed to
    held = pd.concat([g.iloc[rare[d]:rare[d] + 5] for d, g in demo.groupby("department") if d in rare])
    routes = bundle.routes_from_proba(bundle.predict_proba(held[["title", "body"]]))
    for route in routes:
        if route.label in rare and bundle.thresholds[route.label] is None:
            assert route.needs_review
    assert result.evaluation.metrics["macro_f1"] > 0.5
