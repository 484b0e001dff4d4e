"""Same data + same config ⇒ byte-identical predictions file (design practice 3; issue 5, item 5).

Two trainings on the demo data, each into its own fresh MLflow store, then `triage predict` with each
registered champion on the same input: the two files must be equal byte for byte, and scoring again
(in one process or split over two workers) must not change a byte either. A difference would mean an
unseeded step, thread-count-dependent arithmetic, unordered iteration or a timestamp in the output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from command.cli import app
from tests.mlflow_env import point_mlflow_at, reset_mlflow_uris
from training.config import TrainConfig
from training.predict import CHUNK
from training.train import train

pytestmark = pytest.mark.slow

WIDE = {"COLUMNS": "250", "NO_COLOR": "1"}
CHAMPION_URI = "models:/grievance-triage@champion"


@pytest.fixture(scope="module")
def cases_file(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo cases twice over (new ids, one day later), without labels: more than one scoring chunk, so
    `--workers 2` really splits the work, and bursts that the hot-issue replay must order the same way."""
    demo = pd.read_csv(demo_csv, dtype=str, keep_default_na=False).drop(columns=["department", "risk_level"],
                                                                      errors="ignore")
    again = demo.copy()
    again["case_id"] = again["case_id"] + "-b"
    cases = pd.concat([demo, again], ignore_index=True)
    assert len(cases) > CHUNK
    path = tmp_path_factory.mktemp("repro-input") / "cases.csv"
    cases.to_csv(path, index=False)
    return path


class Store:
    """One MLflow store (tracking + registry + artefacts) in its own folder."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def activate(self, mp: pytest.MonkeyPatch) -> None:
        point_mlflow_at(mp, self.home)


@pytest.fixture(scope="module")
def trained_stores(
    demo_csv: Path, fast_config: TrainConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, Store]]:
    """The same training twice, into two fresh stores (each registers its model as version 1, champion)."""
    stores = (Store(tmp_path_factory.mktemp("mlflow-a")), Store(tmp_path_factory.mktemp("mlflow-b")))
    try:
        for store in stores:
            with pytest.MonkeyPatch.context() as mp:
                store.activate(mp)
                result = train([demo_csv], fast_config)
                assert (result.model_version, result.alias) == ("1", "champion")
        yield stores
    finally:
        reset_mlflow_uris()


def predict(store: Store, cases: Path, out: Path, workers: int) -> bytes:
    with pytest.MonkeyPatch.context() as mp:
        store.activate(mp)
        args = ["predict", "--model", CHAMPION_URI, "--input", str(cases), "--output", str(out)]
        result = CliRunner().invoke(app, [*args, "--workers", str(workers)], env=WIDE)
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture(scope="module")
def reference(trained_stores: tuple[Store, Store], cases_file: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Predictions of the first store's champion, scored in one process."""
    out = tmp_path_factory.mktemp("repro-out") / "reference.csv"
    data = predict(trained_stores[0], cases_file, out, workers=1)
    assert len(data.splitlines()) == len(pd.read_csv(cases_file)) + 1
    assert b"risk_level" in data.splitlines()[0]  # the risk model's columns are compared too
    return data


def test_two_trainings_on_the_same_data_and_config_predict_byte_identical_files(
    trained_stores: tuple[Store, Store], reference: bytes, cases_file: Path, tmp_path: Path
) -> None:
    other = predict(trained_stores[1], cases_file, tmp_path / "b.csv", workers=1)
    assert digest(other) == digest(reference)


@pytest.mark.parametrize("workers", [1, 2])
def test_scoring_again_with_one_model_gives_the_same_bytes(
    trained_stores: tuple[Store, Store], reference: bytes, cases_file: Path, tmp_path: Path, workers: int
) -> None:
    again = predict(trained_stores[0], cases_file, tmp_path / f"again-{workers}.csv", workers=workers)
    assert digest(again) == digest(reference)
