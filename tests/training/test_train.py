"""`training.train`: the MLflow round trip, champion / challenger aliases, determinism and error messages.

The trainings share one MLflow store per module (creating a SQLite store costs seconds) and happen in a
fixed order: `first` (version 1), `second` (version 2, same data and config), `worse` (version 3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import get_model_info

from models.mlflow_model import CHALLENGER, CHAMPION, MODEL_NAME, load_model
from tests.mlflow_env import isolated_mlflow, point_mlflow_at
from training.config import ConfigError, TrainConfig, load_config
from training.loading import load_cases
from training.train import INPUT_COLUMNS, TrainingError, TrainResult, data_digest, train

EVAL_ARTEFACTS = {
    "evaluation/confusion_matrix.png",
    "evaluation/per_department_report.csv",
    "evaluation/misrouted_examples.csv",
    "evaluation/thresholds.json",
}


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with isolated_mlflow(tmp_path_factory.mktemp("mlflow")) as home:
        yield home


@pytest.fixture(scope="module")
def first(mlflow_home: Path, demo_csv: Path, fast_config: TrainConfig) -> TrainResult:
    return train([demo_csv], fast_config)


@pytest.fixture(scope="module")
def second(first: TrainResult, demo_csv: Path, fast_config: TrainConfig) -> TrainResult:
    return train([demo_csv], fast_config)


@pytest.fixture(scope="module")
def worse(second: TrainResult, demo_csv: Path, fast_config: TrainConfig) -> TrainResult:
    raw = fast_config.model_dump()
    raw["threshold_folds"] = 2
    raw["classifier"].update(C=0.001, calibration_folds=2)
    raw["features"].update(char_weight=0.0, title_weight=0.0)
    return train([demo_csv], TrainConfig.model_validate(raw))


@pytest.fixture(scope="module")
def held_out(demo_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return demo_split[1]


# -- MLflow round trip -----------------------------------------------------------------------------


@pytest.mark.slow
def test_first_training_registers_version_1_as_champion(first: TrainResult) -> None:
    assert (first.model_name, first.model_version, first.alias) == (MODEL_NAME, "1", CHAMPION)
    assert first.alias_reason == "there was no champion: version 1 is the champion"
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "1"
    assert client.get_model_version(MODEL_NAME, "1").run_id == first.run_id


@pytest.mark.slow
def test_champion_loaded_by_alias_routes_exactly_like_the_trained_bundle(
    first: TrainResult, held_out: pd.DataFrame
) -> None:
    loaded = load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    assert (loaded.name, loaded.version, loaded.alias, loaded.run_id) == (MODEL_NAME, "1", CHAMPION, first.run_id)
    assert loaded.bundle.thresholds == first.bundle.thresholds
    assert loaded.bundle.metadata == first.bundle.metadata
    assert loaded.bundle.route(held_out[INPUT_COLUMNS]) == first.bundle.route(held_out[INPUT_COLUMNS])


@pytest.mark.slow
def test_pyfunc_model_predicts_the_same_departments(first: TrainResult, held_out: pd.DataFrame) -> None:
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    cases = held_out[INPUT_COLUMNS].astype(str).reset_index(drop=True)
    out = pyfunc.predict(cases)
    routes = first.bundle.route(cases)
    assert len(out) == len(cases)
    assert out["department"].tolist() == [r.label for r in routes]
    np.testing.assert_allclose(out["department_confidence"], [r.confidence for r in routes], rtol=0, atol=1e-12)
    assert out["needs_review"].tolist() == [r.needs_review for r in routes]


@pytest.mark.slow
def test_model_signature_takes_title_and_body(first: TrainResult) -> None:
    info = get_model_info(f"models:/{MODEL_NAME}/1")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == ["title", "body"]
    assert "department" in info.signature.outputs.input_names()


@pytest.mark.slow
def test_run_records_the_config_as_params(first: TrainResult, fast_config: TrainConfig) -> None:
    params = mlflow.MlflowClient().get_run(first.run_id).data.params
    assert params["seed"] == "42"
    assert params["threshold_folds"] == "3"
    for key, value in fast_config.flat_params().items():
        assert params[key] == str(value), key
    assert int(params["data.n_train"]) + int(params["data.n_test"]) == int(params["data.rows_kept"])


@pytest.mark.slow
def test_run_records_the_held_out_metrics(first: TrainResult) -> None:
    metrics = mlflow.MlflowClient().get_run(first.run_id).data.metrics
    for name in ("accuracy", "macro_f1", "coverage", "ece"):
        assert metrics[name] == pytest.approx(first.evaluation.metrics[name], abs=1e-12), name
    assert 0.6 <= metrics["macro_f1"] <= 1.0
    assert 0.0 <= metrics["coverage"] <= 1.0
    assert 0.0 <= metrics["ece"] <= 1.0


@pytest.mark.slow
def test_run_stores_the_evaluation_artefacts(first: TrainResult, tmp_path: Path) -> None:
    client = mlflow.MlflowClient()
    stored = {a.path for a in client.list_artifacts(first.run_id, "evaluation")}
    assert stored >= EVAL_ARTEFACTS
    local = Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="evaluation",
                                                     dst_path=str(tmp_path)))
    assert json.loads((local / "thresholds.json").read_text("utf-8")) == first.bundle.thresholds
    report = pd.read_csv(local / "per_department_report.csv")
    assert sorted(report["department"]) == sorted(first.bundle.classes)
    misrouted = pd.read_csv(local / "misrouted_examples.csv")
    assert list(misrouted.columns) == ["case_id", "title", "department", "predicted", "confidence"]
    assert (misrouted["department"] != misrouted["predicted"]).all()
    assert (local / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_run_logs_the_training_data_set_as_an_input(first: TrainResult, demo_csv: Path) -> None:
    run = mlflow.MlflowClient().get_run(first.run_id)
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.name == "training-cases"
    assert json.loads(dataset.profile)["num_rows"] == 780
    assert str(demo_csv) in dataset.source
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
    frame = load_cases([demo_csv], require_department=True, training=True).frame
    assert run.data.tags["data_digest"] == data_digest(frame) == first.bundle.metadata["data_digest"]


@pytest.mark.slow
def test_run_is_tagged_with_the_git_commit(first: TrainResult) -> None:
    tags = mlflow.MlflowClient().get_run(first.run_id).data.tags
    commit = tags["mlflow.source.git.commit"]
    assert commit == (first.bundle.metadata["git_commit"] or "unknown")
    assert commit == "unknown" or re.fullmatch(r"[0-9a-f]{40}", commit)


@pytest.mark.slow
def test_bundle_metadata_describes_the_model(first: TrainResult, fast_config: TrainConfig) -> None:
    meta = first.bundle.metadata
    assert meta["model_name"] == MODEL_NAME
    assert meta["classes"] == first.bundle.classes
    assert meta["thresholds"] == first.bundle.thresholds
    assert meta["config"] == fast_config.model_dump(mode="json")
    assert meta["metrics"]["macro_f1"] == first.evaluation.metrics["macro_f1"]


# -- champion / challenger -------------------------------------------------------------------------


@pytest.mark.slow
def test_retraining_on_the_same_data_does_not_displace_the_champion(first: TrainResult, second: TrainResult) -> None:
    assert second.model_version == "2"
    assert second.alias == CHALLENGER
    assert second.alias_reason.startswith("the champion stays version 1: this run was evaluated on its own held-out")
    assert "triage promote --candidate 2" in second.alias_reason
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == "2"
    tags = client.get_run(second.run_id).data.tags
    assert (tags["registry.alias"], tags["registry.previous_champion"]) == (CHALLENGER, "1")


@pytest.mark.slow
def test_a_worse_model_becomes_challenger_and_the_champion_stays(first: TrainResult, worse: TrainResult) -> None:
    assert worse.model_version == "3"
    assert worse.evaluation.metrics["macro_f1"] < first.evaluation.metrics["macro_f1"]
    assert worse.alias == CHALLENGER
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == "3"
    assert load_model(f"models:/{MODEL_NAME}@{CHAMPION}").run_id == first.run_id


# -- determinism -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_data_and_config_give_the_same_metrics_and_probabilities(
    first: TrainResult, second: TrainResult, held_out: pd.DataFrame
) -> None:
    assert second.evaluation.metrics == first.evaluation.metrics
    assert second.bundle.thresholds == first.bundle.thresholds
    pd.testing.assert_frame_equal(second.evaluation.confusion, first.evaluation.confusion)
    np.testing.assert_array_equal(
        second.bundle.predict_proba(held_out[INPUT_COLUMNS]), first.bundle.predict_proba(held_out[INPUT_COLUMNS])
    )


# -- configuration errors --------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_config_file_loads() -> None:
    config = load_config()
    assert config.seed == 42
    assert config.classifier.kind == "linear_svc"
    assert config.features.word_ngram_range == (1, 2)


def test_config_file_values_override_the_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "seed: 7\nfeatures:\n  char_weight: 0.5\n  word_ngram_range: [1, 3]\n")
    config = load_config(path)
    assert (config.seed, config.features.char_weight, config.features.word_ngram_range) == (7, 0.5, (1, 3))
    assert config.classifier == TrainConfig().classifier


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [("seeed: 1\n", "seeed"), ("features:\n  char_weigth: 0.5\n", "features.char_weigth")],
)
def test_unknown_config_key_is_an_error_naming_the_file_and_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = write_config(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("test_size: 0.7\n", "test_size"),
        ("target_precision: 1.5\n", "target_precision"),
        ("classifier:\n  C: 0\n", "classifier.C"),
        ("classifier:\n  calibration: platt\n", "classifier.calibration"),
        ("features:\n  word_min_df: 0\n", "features.word_min_df"),
    ],
)
def test_config_value_out_of_range_is_an_error_naming_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    path = write_config(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert f"{field}:" in str(info.value)


@pytest.mark.parametrize(
    ("yaml_text", "words"),
    [("seed: [1\n", "not valid YAML"), ("- seed\n- 1\n", "mapping")],
)
def test_unreadable_config_file_is_an_error_naming_the_file(tmp_path: Path, yaml_text: str, words: str) -> None:
    path = write_config(tmp_path, yaml_text)
    with pytest.raises(ConfigError, match=words) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_flat_params_use_dotted_section_keys() -> None:
    config = TrainConfig.model_validate({"classifier": {"C": 0.25}})
    flat = config.flat_params()
    assert flat["seed"] == 42
    assert flat["classifier.C"] == 0.25
    assert flat["features.word_ngram_range"] == [1, 2]
    assert flat["registry.model_name"] == MODEL_NAME
    assert not any(isinstance(v, dict) for v in flat.values())


# -- data errors -----------------------------------------------------------------------------------


def test_department_with_too_few_cases_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_csv: Path, fast_config: TrainConfig
) -> None:
    point_mlflow_at(monkeypatch, tmp_path)
    raw = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    rare = raw[raw["department"] == "交通运输"].head(2)
    small = pd.concat([raw[raw["department"] != "交通运输"], rare])
    path = tmp_path / "small.csv"
    small.to_csv(path, index=False)
    with pytest.raises(TrainingError, match=r"交通运输 \(2\)"):
        train([path], fast_config)
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything was logged


def test_a_single_department_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_csv: Path, fast_config: TrainConfig
) -> None:
    point_mlflow_at(monkeypatch, tmp_path)
    raw = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    path = tmp_path / "one.csv"
    raw[raw["department"] == "城乡建设"].to_csv(path, index=False)
    with pytest.raises(TrainingError, match="at least 2 departments"):
        train([path], fast_config)


# -- risk model inside the run ---------------------------------------------------------------------


@pytest.mark.slow
def test_training_ships_a_risk_model_whose_levels_survive_the_registry_round_trip(
    first: TrainResult, held_out: pd.DataFrame
) -> None:
    assert first.bundle.risk is not None
    metrics = first.evaluation.metrics
    for key in ("risk_red_recall", "risk_red_precision", "risk_macro_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    run = mlflow.get_run(first.run_id)
    assert "risk_red_recall" in run.data.metrics
    assert run.data.tags["risk.labels"] == "reviewed"  # the demo data carries a risk level on every row
    loaded = load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    pairs = held_out[INPUT_COLUMNS].reset_index(drop=True)
    proba = first.bundle.predict_proba(pairs)
    expected = [r.level for r in first.bundle.risk.predict(pairs, proba, first.bundle.classes, reasons=False)]
    got = [r.level for r in loaded.bundle.risk.predict(pairs, proba, loaded.bundle.classes, reasons=False)]
    assert got == expected
    out = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}").predict(pairs.astype(str))
    assert out["risk_level"].tolist() == expected


@pytest.mark.slow
def test_train_time_and_promote_time_metrics_agree_on_the_same_cases(
    first: TrainResult, demo_cases: pd.DataFrame, fast_config: TrainConfig
) -> None:
    """Training's evaluation and promotion's comparison both assess through `TriageBundle.assess`: on the
    held-out cases of the run, promotion's macro-F1 and red recall are the figures the run logged (they
    once differed: the evaluation skipped the red-cue floor that serving applies)."""
    from models.hotspots import HotspotConfig
    from models.mlflow_model import LoadedModel
    from training.predict import attach_hot_issues
    from training.promote import score
    from training.splitting import train_test_split_grouped

    frame = attach_hot_issues(demo_cases, HotspotConfig())
    _, held = train_test_split_grouped(frame, fast_config.test_size, fast_config.seed)
    assert set(held["department"]) == set(first.bundle.classes), "every department held out: one label set"
    logged = mlflow.MlflowClient().get_run(first.run_id).data.metrics
    scored = score(LoadedModel(first.bundle, "test", version="1"), held, rule="held out by the training split")
    assert logged["risk_n_eval"] == len(held) and (held["risk_level"] == "red").any()
    assert scored.macro_f1 == pytest.approx(logged["macro_f1"], abs=1e-12)
    assert scored.red_recall == pytest.approx(logged["risk_red_recall"], abs=1e-12)


@pytest.mark.slow
def test_the_reference_profile_describes_the_held_out_cases_and_is_logged(
    first: TrainResult, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    from models.profile import CONFIDENCE_EDGES

    reference = first.bundle.reference
    assert reference is not None and reference["n_cases"] == len(held_out)
    assert set(reference["department_mix"]) <= set(first.bundle.classes)
    assert sum(reference["department_mix"].values()) == pytest.approx(1.0)
    assert sum(reference["risk_mix"].values()) == pytest.approx(1.0)
    assert reference["confidence"]["edges"] == CONFIDENCE_EDGES
    assert sum(reference["confidence"]["shares"]) == pytest.approx(1.0)
    assert sum(reference["text_length"]["shares"]) == pytest.approx(1.0)
    # Held-out text has words the training split never had, and the router keeps fewer words than it saw.
    assert 0 < reference["vocabulary"]["unseen_share"] < 0.2
    assert 0.5 < reference["vocabulary"]["coverage"] < 1 - reference["vocabulary"]["unseen_share"] + 1e-9
    assert 0 < reference["place_share"] <= 1
    assert set(reference["by_department"]) == set(reference["department_mix"])
    assert "燃气" in reference["training_tokens"]
    local = Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="reference/profile.json",
                                                     dst_path=str(tmp_path)))
    logged = json.loads(local.read_text("utf-8"))
    assert "training_tokens" not in logged and logged["n_training_tokens"] == len(reference["training_tokens"])
    assert logged["department_mix"] == pytest.approx(reference["department_mix"])
