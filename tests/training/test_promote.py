"""`triage promote`: champion vs candidate on reviewed cases neither trained on, and the alias moving only
for a candidate that is not worse. Two small models are trained on the demo data in a temporary MLflow
store: `good` on the real labels, `bad` on labels partly scrambled; a fifth of the demo cases is kept
out of both and plays the reviewed cases."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from command.cli import app
from models.bundle import TriageBundle
from models.mlflow_model import CHAMPION, MODEL_NAME, LoadedModel, load_model
from tests.mlflow_env import isolated_mlflow
from training.config import TrainConfig
from training.promote import (
    EXPERIMENT,
    ModelScore,
    TrainingSet,
    decide,
    held_out,
    promote,
    reviews_from_file,
    training_set,
)
from training.splitting import train_test_split_grouped
from training.train import TRAINING_CASE_IDS_ARTIFACT, TrainResult, train

WIDE = {"COLUMNS": "250", "NO_COLOR": "1"}
REVIEWED_AT = "2026-10-01T09:00:00+00:00"


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with isolated_mlflow(tmp_path_factory.mktemp("mlflow-promote")) as home:
        yield home


@pytest.fixture(scope="module")
def pool_and_reviewed(demo_cases: pd.DataFrame, fast_config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80% of the demo cases to train on, 20% (never trained on) as reviewed cases."""
    return train_test_split_grouped(demo_cases, 0.2, fast_config.seed + 1)


def write_training_file(frame: pd.DataFrame, path: Path) -> Path:
    frame[["case_id", "title", "body", "created_at", "department", "risk_level"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def reviews_csv(pool_and_reviewed: tuple[pd.DataFrame, pd.DataFrame], mlflow_home: Path) -> Path:
    """The held-out cases as `triage export-reviews` writes them, the true labels as reviewers' decisions."""
    reviewed = pool_and_reviewed[1].copy()
    reviewed["label_source"] = "review"
    reviewed["reviewer"] = "reviewer-li"
    reviewed["reviewed_at"] = REVIEWED_AT
    path = mlflow_home / "reviews.csv"
    reviewed[["case_id", "title", "body", "created_at", "department", "risk_level", "label_source", "reviewer",
              "reviewed_at"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def good(mlflow_home: Path, pool_and_reviewed: tuple[pd.DataFrame, pd.DataFrame], fast_config: TrainConfig
         ) -> TrainResult:
    return train([write_training_file(pool_and_reviewed[0], mlflow_home / "pool.csv")], fast_config)


@pytest.fixture(scope="module")
def bad(good: TrainResult, mlflow_home: Path, pool_and_reviewed: tuple[pd.DataFrame, pd.DataFrame],
        fast_config: TrainConfig) -> TrainResult:
    """Trained after `good` on the same texts, 60% of departments shuffled and most red cases labeled green."""
    pool = pool_and_reviewed[0].copy()
    rng = np.random.default_rng(7)
    scrambled = rng.random(len(pool)) < 0.6
    pool.loc[scrambled, "department"] = rng.permutation(pool.loc[scrambled, "department"].to_numpy())
    pool.loc[(pool["risk_level"] == "red") & (rng.random(len(pool)) < 0.85), "risk_level"] = "green"
    return train([write_training_file(pool, mlflow_home / "scrambled.csv")], fast_config)


def make_champion(version: str) -> None:
    mlflow.MlflowClient().set_registered_model_alias(MODEL_NAME, CHAMPION, version)


def champion_version() -> str:
    return str(mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION).version)


def promotion_run(run_id: str) -> mlflow.entities.Run:
    run = mlflow.get_run(run_id)
    assert mlflow.MlflowClient().get_experiment(run.info.experiment_id).name == EXPERIMENT
    return run


# -- training records what it saw --------------------------------------------------------------------


@pytest.mark.slow
def test_training_logs_the_ids_of_the_cases_it_was_fitted_on(
    good: TrainResult, pool_and_reviewed: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    local = mlflow.artifacts.download_artifacts(run_id=good.run_id, artifact_path=TRAINING_CASE_IDS_ARTIFACT,
                                                dst_path=str(tmp_path))
    ids = set(gzip.decompress(Path(local).read_bytes()).decode("utf-8").split())
    pool, reviewed = pool_and_reviewed
    assert ids < set(pool["case_id"])  # the run's own held-out fifth of the pool is not in it
    assert len(ids) == int(mlflow.get_run(good.run_id).data.params["data.n_training_case_ids"])
    assert len(ids) > 0.7 * len(pool)
    assert not ids & set(reviewed["case_id"])


# -- promotion both ways -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_better_candidate_is_promoted_and_the_comparison_logged(good: TrainResult, bad: TrainResult,
                                                                  reviews_csv: Path) -> None:
    make_champion(bad.model_version)
    result = promote(good.model_version, reviews_from_file(reviews_csv), min_cases=50, source=str(reviews_csv))
    assert result.promoted, result.reason
    assert champion_version() == good.model_version
    assert result.n_eval == len(pd.read_csv(reviews_csv)) and result.n_red > 10
    assert result.candidate.macro_f1 > result.champion.macro_f1
    assert result.candidate.red_recall >= result.champion.red_recall
    run = promotion_run(result.run_id)
    assert run.data.tags["decision"] == "promoted"
    assert run.data.params["candidate_version"] == good.model_version
    assert run.data.params["champion_version"] == bad.model_version
    assert run.data.metrics["candidate_macro_f1"] == pytest.approx(result.candidate.macro_f1)
    assert run.data.metrics["champion_red_recall"] == pytest.approx(result.champion.red_recall)
    assert run.data.metrics["n_eval"] == result.n_eval


@pytest.mark.slow
def test_a_worse_candidate_is_refused_and_the_champion_stays(good: TrainResult, bad: TrainResult,
                                                             reviews_csv: Path) -> None:
    make_champion(good.model_version)
    result = promote(bad.model_version, reviews_from_file(reviews_csv), min_cases=50)
    assert not result.promoted
    assert "worse on macro-F1" in result.reason
    assert champion_version() == good.model_version
    run = promotion_run(result.run_id)
    assert run.data.tags["decision"] == "refused" and "worse on macro-F1" in run.data.tags["reason"]
    assert run.data.metrics["candidate_macro_f1"] < run.data.metrics["champion_macro_f1"]
    tag = mlflow.MlflowClient().get_model_version(MODEL_NAME, bad.model_version).tags["promotion"]
    assert tag.startswith("refused")


@pytest.mark.slow
def test_cli_exit_codes_say_promoted_or_refused(good: TrainResult, bad: TrainResult, reviews_csv: Path) -> None:
    make_champion(good.model_version)
    refused = CliRunner().invoke(app, ["promote", "--candidate", bad.model_version, "--reviews", str(reviews_csv),
                                       "--min-cases", "50"], env=WIDE)
    assert refused.exit_code == 1, refused.output
    assert "refused" in refused.output and "macro-F1 (department)" in refused.output
    assert f"champion v{good.model_version}" in refused.output and "red recall" in refused.output
    make_champion(bad.model_version)
    promoted = CliRunner().invoke(app, ["promote", "--candidate", good.model_version, "--reviews", str(reviews_csv),
                                        "--min-cases", "50"], env=WIDE)
    assert promoted.exit_code == 0, promoted.output
    assert "promoted" in promoted.output and champion_version() == good.model_version


@pytest.mark.slow
def test_too_few_held_out_cases_is_a_refusal_that_says_so(good: TrainResult, bad: TrainResult,
                                                          reviews_csv: Path) -> None:
    make_champion(bad.model_version)
    result = promote(good.model_version, reviews_from_file(reviews_csv), min_cases=10_000)
    assert not result.promoted and champion_version() == bad.model_version
    assert f"only {result.n_eval} reviewed cases" in result.reason and "at least 10000" in result.reason
    assert promotion_run(result.run_id).data.tags["decision"] == "refused"


@pytest.mark.slow
def test_cases_a_model_trained_on_are_not_used_to_judge_it(
    good: TrainResult, bad: TrainResult, reviews_csv: Path, pool_and_reviewed: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path
) -> None:
    """Reviews of training cases (and of a training text under a new id) are left out of the comparison."""
    seen = [training_set(load_model(f"models:/{MODEL_NAME}/{r.model_version}")) for r in (good, bad)]
    trained_by_both = seen[0].case_ids & seen[1].case_ids
    pool = pool_and_reviewed[0]
    pool = pool[pool["case_id"].isin(trained_by_both)].head(40).copy()
    pool.loc[pool.index[0], "case_id"] = "RESUBMITTED-1"  # the same text under an id training never saw
    pool = pool.assign(label_source="review", reviewer="reviewer-li", reviewed_at=REVIEWED_AT)
    extra = tmp_path / "more.csv"
    pool.drop(columns=["reporter_id", "source_file", "source_row", "dedup_key", "group_key"]).to_csv(extra,
                                                                                                    index=False)
    reviews = pd.concat([reviews_from_file(reviews_csv), reviews_from_file(extra)], ignore_index=True)
    make_champion(bad.model_version)
    result = promote(good.model_version, reviews, min_cases=50)
    assert result.n_eval == len(pd.read_csv(reviews_csv))


@pytest.mark.slow
def test_without_a_champion_the_candidate_is_promoted_directly(good: TrainResult, bad: TrainResult) -> None:
    mlflow.MlflowClient().delete_registered_model_alias(MODEL_NAME, CHAMPION)
    result = promote(bad.model_version, None)
    assert result.promoted and "no champion yet" in result.reason
    assert champion_version() == bad.model_version
    assert promotion_run(result.run_id).data.params["champion_version"] == "none"


@pytest.mark.slow
def test_an_unknown_candidate_is_an_error_naming_it(good: TrainResult, reviews_csv: Path) -> None:
    result = CliRunner().invoke(app, ["promote", "--candidate", "999", "--reviews", str(reviews_csv)], env=WIDE)
    assert result.exit_code == 2
    assert "cannot load the candidate models:/grievance-triage/999" in " ".join(result.output.split())
    assert "Traceback" not in result.output


# -- the rules, without training ----------------------------------------------------------------------


def test_decision_rules() -> None:
    champ = ModelScore("1", macro_f1=0.80, red_recall=0.70, held_out_rule="")
    assert decide(replace(champ, version="2"), champ, 100, 10, 30)[0]  # equal is not worse
    assert not decide(replace(champ, macro_f1=0.79), champ, 100, 10, 30)[0]
    promoted, reason = decide(replace(champ, macro_f1=0.9, red_recall=0.6), champ, 100, 10, 30)
    assert not promoted and "misses more red cases" in reason
    promoted, reason = decide(replace(champ, macro_f1=0.9, red_recall=None), replace(champ, red_recall=None), 100, 0,
                              30)
    assert promoted and "red recall not compared" in reason
    promoted, reason = decide(replace(champ, macro_f1=0.99), champ, 29, 3, 30)
    assert not promoted and "only 29 reviewed cases" in reason
    # Red precision: calling more cases red than reviewers did is worse, whatever it does to recall.
    precise = replace(champ, red_precision=0.6, called_red=12)
    promoted, reason = decide(replace(precise, red_recall=1.0, red_precision=0.1, called_red=100), precise, 100, 10, 30)
    assert not promoted and "red precision 0.1000 (100 called red) vs champion 0.6000" in reason
    assert decide(replace(precise, version="2", red_precision=0.6), precise, 100, 10, 30)[0]


class AlwaysRed:
    """A risk model that calls every case red: its recall of red is perfect, and it must not pass the gate."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def predict(self, *args: object, **kwargs: object) -> list:
        return [replace(result, level="red") for result in self.inner.predict(*args, **kwargs)]

    def predict_inputs(self, *args: object, **kwargs: object) -> list:
        # What `TriageBundle.finish` calls (after `inputs`, which the wrapped model answers).
        return [replace(result, level="red") for result in self.inner.predict_inputs(*args, **kwargs)]


@pytest.mark.slow
def test_a_model_that_calls_every_case_red_cannot_pass_the_gate(good: TrainResult, reviews_csv: Path) -> None:
    from training.promote import score

    reviews = reviews_from_file(reviews_csv)
    champion = load_model(f"models:/{MODEL_NAME}/{good.model_version}")
    everything_red = LoadedModel(bundle=replace(champion.bundle, risk=AlwaysRed(champion.bundle.risk)),
                                 uri="test:always-red", name=MODEL_NAME, version="always-red")
    n_red = int((reviews["risk_level"] == "red").sum())
    assert 0 < n_red < len(reviews)
    candidate, incumbent = score(everything_red, reviews, ""), score(champion, reviews, "")
    # Same router: the same macro-F1; every red case caught; but red precision is just the share of red cases.
    assert candidate.macro_f1 == incumbent.macro_f1
    assert candidate.red_recall == 1.0 >= incumbent.red_recall
    assert candidate.called_red == len(reviews) and candidate.red_precision == pytest.approx(n_red / len(reviews))
    promoted, reason = decide(candidate, incumbent, len(reviews), n_red, 30)
    assert not promoted and "calls red more cases reviewers did not" in reason


def test_a_model_without_training_ids_is_judged_on_cases_reviewed_after_it_was_trained(
    demo_bundle: TriageBundle, demo_cases: pd.DataFrame
) -> None:
    bundle = replace(demo_bundle, metadata={**demo_bundle.metadata, "trained_at": "2026-10-01T00:00:00+00:00"})
    seen = training_set(LoadedModel(bundle, "local", name=None, version="0", run_id=None))
    assert seen.case_ids is None and seen.trained_at == datetime(2026, 10, 1, tzinfo=UTC)
    assert "only cases reviewed after it was trained" in seen.note
    reviews = demo_cases.head(4).assign(reviewed_at=pd.to_datetime([
        "2026-09-30T23:00:00Z", "2026-10-01T01:00:00Z", "2026-10-02T00:00:00Z", "2026-09-01T00:00:00Z"], utc=True))
    kept = held_out(reviews, [seen])
    assert kept["case_id"].tolist() == reviews["case_id"].iloc[1:3].tolist()
    by_ids = TrainingSet(frozenset([reviews["case_id"].iloc[1]]), None, None, "")
    assert held_out(reviews, [seen, by_ids])["case_id"].tolist() == [reviews["case_id"].iloc[2]]
