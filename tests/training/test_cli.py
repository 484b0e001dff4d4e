"""The `triage` command line through typer's CliRunner: predict, train, and their error messages."""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from command.cli import app
from models.bundle import TriageBundle
from tests.mlflow_env import point_mlflow_at, reset_mlflow_uris
from training.config import TrainConfig

ROUTE_COLUMNS = [
    "case_id", "department", "department_confidence", "needs_review", "out_of_taxonomy",
    "top1_department", "top1_probability", "top2_department", "top2_probability",
    "top3_department", "top3_probability", "hot_issue_id",
]
WIDE = {"COLUMNS": "250", "NO_COLOR": "1"}


def flat(text: str) -> str:
    """Output without whitespace, so a long path that rich wrapped still matches."""
    return re.sub(r"\s+", "", text)


def invoke(args: list[str]):
    return CliRunner().invoke(app, args, env=WIDE)


@pytest.fixture
def mlflow_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    point_mlflow_at(monkeypatch, tmp_path)
    yield tmp_path
    reset_mlflow_uris()


@pytest.fixture
def cases_csv(tmp_path: Path, demo_split: tuple[pd.DataFrame, pd.DataFrame]) -> Path:
    """Twelve held-out demo cases without their labels, plus one title-only case."""
    cases = demo_split[1][["case_id", "title", "body"]].head(12)
    extra = pd.DataFrame({"case_id": ["NEW-1"], "title": ["18路公交车班次太少"], "body": [""]})
    path = tmp_path / "cases.csv"
    pd.concat([cases, extra], ignore_index=True).to_csv(path, index=False)
    return path


# -- predict ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_writes_one_row_per_case_with_the_route_columns(
    mlflow_in_tmp: Path, demo_bundle_dir: Path, demo_bundle: TriageBundle, cases_csv: Path, suffix: str
) -> None:
    out = mlflow_in_tmp / "out" / f"predictions{suffix}"
    result = invoke(["predict", "--model", str(demo_bundle_dir), "--input", str(cases_csv), "--output", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, dtype={"case_id": str})
    source = pd.read_csv(cases_csv, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ROUTE_COLUMNS
    assert len(frame) == len(source) == 13
    assert frame["case_id"].astype(str).tolist() == source["case_id"].tolist()
    routes = demo_bundle.route(list(zip(source["title"], source["body"], strict=True)))
    assert frame["department"].tolist() == [r.label for r in routes]
    assert frame["needs_review"].astype(bool).tolist() == [r.needs_review for r in routes]
    assert frame["top3_department"].tolist() == [r.top[2][0] for r in routes]
    assert frame["department_confidence"].tolist() == pytest.approx([r.confidence for r in routes], abs=1e-12)
    assert (frame["top1_probability"] >= frame["top2_probability"]).all()
    assert f"wrote 13 predictions to {out}" in " ".join(result.stdout.split())


def test_predict_scores_with_the_model_frozen_out_of_the_collector(
    mlflow_in_tmp: Path, demo_bundle_dir: Path, cases_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loaded model is frozen (`models.long_lived`) before the scoring starts."""
    import training.predict

    frozen_when_scoring: list[int] = []
    score = training.predict.score_frame

    def watched(*args: object, **kwargs: object) -> object:
        frozen_when_scoring.append(gc.get_freeze_count())
        return score(*args, **kwargs)

    monkeypatch.setattr(training.predict, "score_frame", watched)
    gc.unfreeze()
    try:
        out = mlflow_in_tmp / "out.csv"
        result = invoke(["predict", "--model", str(demo_bundle_dir), "--input", str(cases_csv), "--output", str(out)])
    finally:
        gc.unfreeze()
    assert result.exit_code == 0, result.output
    assert len(frozen_when_scoring) == 1 and frozen_when_scoring[0] > 0


def test_predict_refuses_an_unsupported_output_suffix(
    mlflow_in_tmp: Path, demo_bundle_dir: Path, cases_csv: Path
) -> None:
    out = mlflow_in_tmp / "predictions.json"
    result = invoke(["predict", "--model", str(demo_bundle_dir), "--input", str(cases_csv), "--output", str(out)])
    assert result.exit_code == 2
    assert "'.json'" in result.output
    assert ".csv" in result.output and ".parquet" in result.output
    assert flat(str(out)) in flat(result.output)
    assert not out.exists()


def test_predict_with_a_missing_input_file_names_it_without_a_traceback(
    mlflow_in_tmp: Path, demo_bundle_dir: Path
) -> None:
    missing = mlflow_in_tmp / "no_such_cases.csv"
    out = mlflow_in_tmp / "out.csv"
    result = invoke(["predict", "--model", str(demo_bundle_dir), "--input", str(missing), "--output", str(out)])
    assert result.exit_code == 2
    assert "no_such_cases.csv" in result.output
    assert "not found" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_predict_with_a_model_path_that_holds_no_model_fails_cleanly(mlflow_in_tmp: Path, cases_csv: Path) -> None:
    empty = mlflow_in_tmp / "empty_model"
    empty.mkdir()
    result = invoke(["predict", "--model", str(empty), "--input", str(cases_csv), "--output", "out.csv"])
    assert result.exit_code == 2
    assert "could not load model" in result.output
    assert "Traceback" not in result.output


# -- train -----------------------------------------------------------------------------------------


def test_train_with_a_file_without_a_label_column_names_the_file_and_accepted_headers(
    mlflow_in_tmp: Path, demo_csv: Path
) -> None:
    unlabeled = mlflow_in_tmp / "unlabeled.csv"
    pd.read_csv(demo_csv, dtype=str).drop(columns=["department"]).head(20).to_csv(unlabeled, index=False)
    result = invoke(["train", "--data", str(unlabeled)])
    assert result.exit_code == 2
    out = flat(result.output)
    assert flat(str(unlabeled)) in out
    for header in ("一级标签", "一级分类", "department", "label"):
        assert header in out
    assert "Traceback" not in result.output
    assert not (mlflow_in_tmp / "mlflow.db").exists()


def test_train_with_a_bad_config_names_the_file_and_field(mlflow_in_tmp: Path, demo_csv: Path) -> None:
    config = mlflow_in_tmp / "bad.yaml"
    config.write_text("classifier:\n  C: -1\n", encoding="utf-8")
    result = invoke(["train", "--data", str(demo_csv), "--config", str(config)])
    assert result.exit_code == 2
    assert flat(str(config)) in flat(result.output)
    assert "classifier.C" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_train_end_to_end_prints_metrics_and_the_mlflow_run(
    mlflow_in_tmp: Path, demo_csv: Path, fast_config: TrainConfig
) -> None:
    # A quick variant of the test config (the command, not the model quality, is under test here).
    raw = fast_config.model_dump(mode="json")
    raw["threshold_folds"] = 2
    raw["classifier"]["calibration_folds"] = 2
    raw["features"]["char_weight"] = 0.0
    config = mlflow_in_tmp / "quick.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    result = invoke(["train", "--data", str(demo_csv), "--config", str(config)])
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    assert "grievance-triage v1 → alias 'champion'" in stdout
    row = re.search(r"macro_f1\s*│\s*([0-9.]+)", stdout)
    assert row, stdout
    assert 0.0 < float(row.group(1)) <= 1.0
    for department in ("城乡建设", "劳动和社会保障", "卫生计生"):
        assert department in stdout
    run_lines = [line for line in stdout.splitlines() if line.startswith("MLflow run:")]
    assert len(run_lines) == 1, stdout
    run_id = re.search(r"/runs/([0-9a-f]+)", run_lines[0]).group(1)
    logged = mlflow.MlflowClient().get_run(run_id).data.metrics["macro_f1"]
    assert logged == pytest.approx(float(row.group(1)), abs=1e-4)
    assert "read 780 rows from 1 file(s)" in " ".join(result.stderr.split())


# -- hotspots --------------------------------------------------------------------------------------


def test_hotspots_replays_the_demo_file_and_writes_each_alert_with_when_it_was_raised(
    tmp_path: Path, demo_csv: Path
) -> None:
    out = tmp_path / "alerts.json"
    result = invoke(["hotspots", "--input", str(demo_csv), "--output", str(out)])
    assert result.exit_code == 0, result.output
    alerts = json.loads(out.read_text(encoding="utf-8"))
    assert alerts, "the demo data holds twelve bursts; some must alert"
    assert {a["level"] for a in alerts} <= {"yellow", "red"}
    times = [a["raised_at"] for a in alerts]
    assert times == sorted(times), "alerts come in the order they were raised"
    red = sum(a["level"] == "red" for a in alerts)
    assert f"{len(alerts)}alerts({red}red)" in flat(result.output)


def test_hotspots_with_a_bad_config_names_the_file_and_the_key(tmp_path: Path, demo_csv: Path) -> None:
    config = tmp_path / "hot.yaml"
    config.write_text("window_dayz: 30\n", encoding="utf-8")
    result = invoke(["hotspots", "--input", str(demo_csv), "--output", str(tmp_path / "a.json"),
                     "--config", str(config)])
    assert result.exit_code == 2
    assert "hot.yaml" in flat(result.output) and "window_dayz" in result.output
    assert "Traceback" not in result.output
