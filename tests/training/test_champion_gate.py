"""The champion changes only when a candidate beats it on the same cases (issue 14, item 2).

One MLflow store, versions in order: a throwaway model trained first (the champion, since there is
none), a second throwaway trained without a comparison set (challenger: a run's own split decides
nothing), a full model that beats it on the fixed comparison set (champion), a throwaway compared on
the same set (challenger, worse), and an experiment trained without registering.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from command.cli import app
from models.mlflow_model import CHALLENGER, CHAMPION, MODEL_NAME
from tests.mlflow_env import isolated_mlflow
from training.comparison import load_comparison_set
from training.config import TrainConfig
from training.train import TrainResult, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, demo_csv: Path) -> dict[str, Path]:
    """The demo file cut into a comparison set (every fourth case), the rest, and a 160-case throwaway
    drawn from the rest."""
    folder = tmp_path_factory.mktemp("gate-data")
    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    comparison, rest = frame.iloc[::4], frame.drop(frame.index[::4])
    out = {"comparison": folder / "comparison.csv", "rest": folder / "rest.csv", "small": folder / "small.csv"}
    comparison.to_csv(out["comparison"], index=False)
    rest.to_csv(out["rest"], index=False)
    rest.groupby("department", group_keys=False).head(23).to_csv(out["small"], index=False)
    return out


@pytest.fixture(scope="module")
def runs(files: dict[str, Path], fast_config: TrainConfig, tmp_path_factory: pytest.TempPathFactory,
         demo_csv: Path) -> Iterator[dict[str, TrainResult]]:
    with isolated_mlflow(tmp_path_factory.mktemp("gate-mlflow")):
        comparison = load_comparison_set(files["comparison"])
        out = {"first": train([files["small"]], fast_config)}
        out["own_split"] = train([files["small"]], fast_config)
        out["better"] = train([demo_csv], fast_config, comparison=comparison)
        out["worse"] = train([files["small"]], fast_config, comparison=comparison)
        out["experiment"] = train([files["small"]], fast_config, register=False)
        yield out


def champion() -> str:
    return str(mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION).version)


def test_the_first_model_takes_the_empty_champion_alias(runs: dict[str, TrainResult]) -> None:
    assert (runs["first"].model_version, runs["first"].alias) == ("1", CHAMPION)


def test_a_retrain_judged_on_its_own_split_is_only_the_challenger(runs: dict[str, TrainResult]) -> None:
    own = runs["own_split"]
    assert (own.model_version, own.alias, own.comparison) == ("2", CHALLENGER, None)
    assert "its own held-out split" in own.alias_reason and "--compare-on" in own.alias_reason


def test_a_candidate_that_beats_the_champion_on_the_comparison_set_takes_the_alias(
    runs: dict[str, TrainResult],
) -> None:
    better = runs["better"]
    assert (better.model_version, better.alias) == ("3", CHAMPION)
    outcome = better.comparison
    assert outcome is not None and outcome.promoted and outcome.champion_version == "1"
    assert outcome.candidate.macro_f1 > outcome.champion.macro_f1
    # Trained on the whole demo file: the comparison cases were held out of its training.
    assert better.held_out_for_comparison == len(load_comparison_set(_comparison_path(runs)).cases)
    assert better.alias_reason.startswith("version 3 is the champion (was 1): better on macro-F1")


def _comparison_path(runs: dict[str, TrainResult]) -> Path:
    params = mlflow.MlflowClient().get_run(runs["better"].run_id).data.params
    return Path(params["comparison.path"])


def test_a_worse_candidate_on_the_same_set_stays_challenger_and_says_why(runs: dict[str, TrainResult]) -> None:
    worse = runs["worse"]
    assert (worse.model_version, worse.alias) == ("4", CHALLENGER)
    assert worse.comparison is not None and not worse.comparison.promoted
    assert re.match(r"the champion stays version 3: candidate is worse on macro-F1", worse.alias_reason)
    run = mlflow.MlflowClient().get_run(worse.run_id)
    assert run.data.tags["registry.reason"] == worse.alias_reason
    assert run.data.params["comparison.version"] == load_comparison_set(_comparison_path(runs)).version


def test_an_experiment_is_logged_without_a_registered_version(runs: dict[str, TrainResult]) -> None:
    experiment = runs["experiment"]
    assert (experiment.model_version, experiment.alias) == (None, None)
    client = mlflow.MlflowClient()
    assert client.get_run(experiment.run_id).data.tags["registry.alias"] == "not registered"
    assert max(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'")) == 4
    assert champion() == "3"


def test_the_command_says_what_happened_to_the_aliases(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text("threshold_folds: 3\nclassifier:\n  calibration_folds: 3\n", encoding="utf-8")
    with isolated_mlflow(tmp_path):
        runner = CliRunner()
        first = runner.invoke(app, ["train", "--data", str(files["small"]), "--config", str(config)])
        assert first.exit_code == 0, first.output
        assert "aliases: there was no champion: version 1 is the champion" in first.output
        again = runner.invoke(app, ["train", "--data", str(files["small"]), "--config", str(config),
                                    "--compare-on", str(files["comparison"])])
        assert again.exit_code == 0, again.output
        assert "comparison set:" in again.output
        assert "aliases: the champion stays version 1: candidate does not beat the champion" in \
            " ".join(again.output.split())
        refused = runner.invoke(app, ["train", "--data", str(files["small"]), "--no-register",
                                      "--compare-on", str(files["comparison"])])
        assert refused.exit_code == 2 and "takes no comparison set" in refused.output


def test_training_prints_what_a_person_needs_and_no_library_noise(files: dict[str, Path], tmp_path: Path) -> None:
    """Issue 14, item 6: MLflow used to warn about an ambiguous dataset source and CloudPickle, and print
    its table creation, signature validation and registration chatter on every run."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           "TRIAGE_MLFLOW_ARTIFACTS": str(tmp_path / "art"), "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    env.pop("MLFLOW_LOGGING_LEVEL", None)
    done = subprocess.run([sys.executable, "-m", "command.cli", "train", "--data", str(files["small"])],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    for noise in ("UserWarning", "CloudPickle", "Successfully registered", "Created version", "mlflow.store",
                  "Validating input example", "Creating initial MLflow database tables"):
        assert noise not in output, noise
    assert "aliases: there was no champion: version 1 is the champion" in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) < 45, "\n".join(lines)
