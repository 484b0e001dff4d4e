"""Shared fixtures: the shipped demo data and a router fitted on it once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.bundle import TriageBundle
from models.router import build_router
from models.thresholds import choose_thresholds
from training.config import TrainConfig
from training.loading import load_cases
from training.splitting import train_test_split_grouped

ROOT = Path(__file__).resolve().parent.parent
DEMO_CSV = ROOT / "training" / "demo_data" / "grievances.csv"


@pytest.fixture(scope="session")
def demo_csv() -> Path:
    return DEMO_CSV


@pytest.fixture(scope="session")
def demo_cases() -> pd.DataFrame:
    return load_cases([DEMO_CSV], require_department=True, training=True).frame


@pytest.fixture(scope="session")
def fast_config() -> TrainConfig:
    """The default config with fewer folds, so tests that train stay quick."""
    return TrainConfig.model_validate({"threshold_folds": 3, "classifier": {"calibration_folds": 3}})


@pytest.fixture(scope="session")
def demo_split(demo_cases: pd.DataFrame, fast_config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    return train_test_split_grouped(demo_cases, fast_config.test_size, fast_config.seed)


@pytest.fixture(scope="session")
def demo_bundle(demo_split: tuple[pd.DataFrame, pd.DataFrame], fast_config: TrainConfig) -> TriageBundle:
    """A router fitted on the demo training split, thresholds chosen on its own held-out split.

    Choosing thresholds on the evaluation split is fine for a fixture; real training uses out-of-fold
    predictions (see training.train).
    """
    train, test = demo_split
    router = build_router(fast_config.features, fast_config.classifier, fast_config.seed)
    router.fit(train[["title", "body"]], np.asarray(train["department"], dtype=object))
    proba = router.predict_proba(test[["title", "body"]])
    thresholds = choose_thresholds(test["department"], proba, list(router.classes_), 0.9, min_support=3)
    return TriageBundle(
        router=router,
        thresholds=thresholds,
        target_precision=0.9,
        metadata={"model_name": "grievance-triage", "model_version": "test", "trained_at": "2026-01-01T00:00:00+00:00",
                  "metrics": {"macro_f1": 0.0}},
    )


@pytest.fixture(scope="session")
def demo_bundle_with_risk(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame], fast_config: TrainConfig
) -> TriageBundle:
    """`demo_bundle` with a risk model trained on the training split, burst statistics included (the
    detector replayed over the split), as training builds it."""
    from dataclasses import replace

    from models.hotspots import HotspotConfig
    from models.risk import RiskModel
    from training.predict import attach_hot_issues

    train = attach_hot_issues(demo_split[0], HotspotConfig())
    risk = RiskModel(fast_config.risk).fit(
        train, router_proba=demo_bundle.predict_proba(train), router_classes=demo_bundle.classes, seed=fast_config.seed
    )
    return replace(demo_bundle, risk=risk)


@pytest.fixture(scope="session")
def demo_bundle_dir(demo_bundle: TriageBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bundle")
    demo_bundle.save(directory)
    return directory


@pytest.fixture(scope="session", autouse=True)
def _isolated_service_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps started by tests write their audit store to a temporary SQLite file, never ./var, and accept
    the test keys in `tests.keys`."""
    import os

    from tests.keys import API_KEYS

    wanted = {
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('service-db') / 'triage.db'}",
        "TRIAGE_API_KEYS": API_KEYS,
    }
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _one_segmenter_per_test() -> Iterator[None]:
    """Each test starts with jieba and no model holding the segmenter, as a fresh process does: a test
    that trains (rjieba by default) or loads a model must not decide how the next test's text is cut."""
    from features import tokenizer

    tokenizer.use("jieba")
    yield
    tokenizer.use("jieba")
