"""The hashed router (`classifier.kind: hashed_sgd`): streams chunks, calibrates, routes the demo hold-out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import SGDClassifier

from models.bundle import TriageBundle
from models.hashed_router import CalibratedSGD, HashedCaseVectorizer, HashedRouter
from models.router import build_router
from training.config import ConfigError, TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
HASHED_YAML = ROOT / "experiments" / "router-hashed.yaml"
CHUNK = 150


def _config(**hashed: object) -> TrainConfig:
    raw = load_config(HASHED_YAML).model_dump()
    raw["classifier"]["hashed"].update(hashed)
    return TrainConfig.model_validate(raw)


@pytest.fixture(scope="module")
def fitted(demo_split: tuple[pd.DataFrame, pd.DataFrame]) -> HashedRouter:
    config = _config()
    train, _ = demo_split
    router = build_router(config.features, config.classifier, config.seed)
    return router.fit(train[["title", "body"]], np.asarray(train["department"], dtype=object))


def test_the_shipped_config_selects_the_hashed_router_and_defaults_stay() -> None:
    assert isinstance(build_router(_config().features, _config().classifier, 42), HashedRouter)
    default = load_config(None)
    assert default.classifier.kind == "linear_svc" and default.classifier.hashed is None
    assert not any(key.startswith("classifier.hashed") for key in default.flat_params())
    assert _config().flat_params()["classifier.hashed.chunk_size"] == _config().classifier.hashed.chunk_size


def test_probabilities_are_calibrated_distributions(fitted: HashedRouter, demo_split) -> None:
    _, test = demo_split
    proba = fitted.predict_proba(test[["title", "body"]])
    assert proba.shape == (len(test), test["department"].nunique())
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba >= 0).all() and (proba <= 1).all()
    # Calibrated, not one-hot: the confidence of wrong answers is lower than that of right ones.
    pred = np.asarray(fitted.classes_, dtype=object)[proba.argmax(axis=1)]
    right = pred == test["department"].to_numpy()
    assert proba.max(axis=1)[~right].mean() < proba.max(axis=1)[right].mean()


def test_top_department_accuracy_on_the_demo_holdout(fitted: HashedRouter, demo_split) -> None:
    """Measured 0.854 here (157 cases); the default TF-IDF + LinearSVC router gets 0.847 on the same split.
    0.80 leaves room for seven more misrouted cases; hashing that loses the text (idf all zero, labels
    shuffled against the rows) falls to chance, 1/7."""
    _, test = demo_split
    pred = np.asarray(fitted.classes_, dtype=object)[fitted.predict_proba(test[["title", "body"]]).argmax(axis=1)]
    assert float(np.mean(pred == test["department"].to_numpy())) >= 0.80


def test_learning_sees_bounded_chunks(monkeypatch: pytest.MonkeyPatch, demo_cases: pd.DataFrame) -> None:
    """Every partial_fit and every hashing call gets at most one chunk of cases, never the whole set."""
    seen_fit: list[int] = []
    seen_hash: list[int] = []
    real_fit, real_counts = SGDClassifier.partial_fit, HashedCaseVectorizer.counts

    def spy_fit(self, X, y, classes=None, sample_weight=None):
        seen_fit.append(X.shape[0])
        return real_fit(self, X, y, classes=classes, sample_weight=sample_weight)

    def spy_counts(self, cases):
        out = real_counts(self, cases)
        seen_hash.append(out.shape[0])
        return out

    monkeypatch.setattr(SGDClassifier, "partial_fit", spy_fit)
    monkeypatch.setattr(HashedCaseVectorizer, "counts", spy_counts)
    config = _config(chunk_size=CHUNK, epochs=2)
    router = build_router(config.features, config.classifier, config.seed)
    router.fit(demo_cases[["title", "body"]], demo_cases["department"].to_numpy(dtype=object))
    n, folds = len(demo_cases), config.classifier.calibration_folds
    assert max(seen_fit) <= CHUNK and max(seen_hash) <= CHUNK
    assert sum(seen_hash) == n  # each case hashed once (then read back from the spill)
    # (folds + 1) models x epochs: the full model sees every case once per epoch.
    assert sum(seen_fit) == 2 * (n + (folds - 1) * n)


def test_fit_stream_reads_a_file_chunk_by_chunk(demo_csv: Path, demo_split) -> None:
    """A source read once (a CSV reader) is enough: the router spills what it needs."""
    config = _config(chunk_size=CHUNK, epochs=3)  # small chunks mean many partial_fit calls: fewer epochs
    router = build_router(config.features, config.classifier, config.seed)
    reader = pd.read_csv(demo_csv, chunksize=CHUNK, dtype=str, keep_default_na=False)
    router.fit_stream((chunk[["title", "body"]], chunk["department"]) for chunk in reader)
    _, test = demo_split
    pred = np.asarray(router.classes_, dtype=object)[router.predict_proba(test[["title", "body"]]).argmax(axis=1)]
    assert float(np.mean(pred == test["department"].to_numpy())) >= 0.80  # trained on these cases too: a floor


def test_same_data_and_seed_give_the_same_router(fitted: HashedRouter, demo_split) -> None:
    config = _config()
    train, test = demo_split
    again = build_router(config.features, config.classifier, config.seed)
    again.fit(train[["title", "body"]], np.asarray(train["department"], dtype=object))
    np.testing.assert_array_equal(again.predict_proba(test[["title", "body"]]),
                                  fitted.predict_proba(test[["title", "body"]]))


def test_bundle_serves_it_like_the_default_router(fitted: HashedRouter, demo_split, tmp_path: Path) -> None:
    _, test = demo_split
    bundle = TriageBundle(router=fitted, thresholds=dict.fromkeys(fitted.classes_, 0.6), target_precision=0.9)
    loaded = TriageBundle.load(bundle.save(tmp_path))
    pairs = test[["title", "body"]].head(20)
    np.testing.assert_allclose(loaded.predict_proba(pairs), fitted.predict_proba(pairs))
    one = loaded.route_one(pairs.iloc[0]["title"], pairs.iloc[0]["body"])
    assert one.label == loaded.route(pairs)[0].label
    assert one.confidence == pytest.approx(loaded.route(pairs)[0].confidence)


@pytest.mark.parametrize(("classifier", "message"), [
    ({"kind": "linear_svc", "hashed": {"epochs": 3}}, "classifier: Value error, hashed: settings only apply to kind"),
    ({"kind": "hashed_sgd", "calibration": "isotonic"}, "sigmoid only"),
    ({"kind": "hashed_sgd", "hashed": {"chunksize": 10}}, "classifier.hashed.chunksize: Extra inputs are not"),
    ({"kind": "hashed_sgd", "hashed": {"chunk_size": 0}}, "classifier.hashed.chunk_size"),
])
def test_bad_hashed_settings_name_the_field(classifier: dict, message: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"classifier": classifier}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_calibrated_sgd_follows_the_estimator_contract() -> None:
    from sklearn.base import clone

    est = CalibratedSGD(alpha=1e-4, epochs=2, chunk_size=50, calibration_folds=2, random_state=1)
    assert clone(est).get_params() == est.get_params()
    rng = np.random.default_rng(0)
    X = rng.random((300, 20))
    y = np.where(X[:, 0] > 0.66, "a", np.where(X[:, 0] > 0.33, "b", "c"))
    import scipy.sparse as sp

    fitted = est.fit(sp.csr_matrix(X), y)
    assert fitted is est and list(est.classes_) == ["a", "b", "c"]
    assert np.mean(est.predict(sp.csr_matrix(X)) == y) > 0.6
