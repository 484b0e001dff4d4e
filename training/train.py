"""`triage train`: fit the router, choose thresholds, evaluate, and record everything in MLflow."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from rich.progress import Progress
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from features import tokenizer
from features.prepared import prepared_cases
from features.text import TEXT_PIPELINE_VERSION
from models.bundle import Assessment, TriageBundle
from models.hotspots import HotspotConfig
from models.mlflow_model import CHALLENGER, CHAMPION, PYFUNC_ENTRY, frame_bursts, routes_frame
from models.profile import case_figures, reference_from_training, router_vocabulary, without_tokens
from models.risk import BoosterFitter, RiskModel
from models.router import build_router
from models.taxonomy_guard import TaxonomyGuard, let_through, max_class_score
from models.thresholds import choose_thresholds
from models.tracking import configure_tracking, ensure_experiment, run_link
from training.comparison import ComparisonSet, without_comparison_cases
from training.config import TrainConfig
from training.evaluate import Evaluation, evaluate_router, plot_confusion
from training.loading import LoadedCases, load_cases
from training.predict import attach_hot_issues
from training.risk_labels import JoinReport, merge_risk_labels
from training.splitting import group_folds, train_test_split_grouped

if TYPE_CHECKING:
    from training.promote import PromotionResult

logger = logging.getLogger(__name__)

INPUT_COLUMNS = ["title", "body"]
MIN_CASES_PER_DEPARTMENT = 4
#: Run artefacts naming what the model was fitted on, so `triage promote` can evaluate it on reviewed
#: cases it has not seen: case ids, and fingerprints of the texts (copies under other ids count as seen).
TRAINING_CASE_IDS_ARTIFACT = "data/training_case_ids.txt.gz"
TRAINING_TEXT_KEYS_ARTIFACT = "data/training_text_keys.txt.gz"
#: The reference profile the drift report compares served traffic with (`models.profile`).
REFERENCE_PROFILE_ARTIFACT = "reference/profile.json"


class TrainingError(ValueError):
    """The data cannot train a router (for example a department with too few cases)."""


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    model_name: str
    model_version: str | None  # None: not registered (`register=False`)
    alias: str | None
    evaluation: Evaluation
    bundle: TriageBundle
    link: str
    #: What happened to the aliases and why, in a sentence for the person who trained.
    alias_reason: str = ""
    #: The champion gate's comparison on the fixed comparison set, when one was made.
    comparison: PromotionResult | None = None
    held_out_for_comparison: int = 0


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def data_digest(frame: pd.DataFrame) -> str:
    """Content hash of what the router learns from (text + label), independent of file format."""
    h = hashlib.sha256()
    for row in frame[["dedup_key", "department"]].itertuples(index=False):
        h.update(f"{row.dedup_key}\x1f{row.department}\x1e".encode())
    return h.hexdigest()[:16]


def text_fingerprint(dedup_key: str) -> str:
    """A short hash of a case's text key (`training.loading.text_keys`): comparable, but no case text."""
    return hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()[:24]


def _gzip_lines(lines: Sequence[str]) -> bytes:
    """Sorted, de-duplicated lines, gzipped with a fixed mtime so the same set gives the same bytes."""
    return gzip.compress("".join(f"{line}\n" for line in sorted(set(lines))).encode("utf-8"), mtime=0)


def log_training_cases(train_df: pd.DataFrame, directory: Path) -> None:
    """Log which cases the model was fitted on (ids and text fingerprints) as gzipped text artefacts."""
    ids = [str(i) for i in train_df["case_id"]]
    keys = [text_fingerprint(k) for k in train_df["dedup_key"]]
    for artifact, lines in ((TRAINING_CASE_IDS_ARTIFACT, ids), (TRAINING_TEXT_KEYS_ARTIFACT, keys)):
        path = directory / Path(artifact).name
        path.write_bytes(_gzip_lines(lines))
        mlflow.log_artifact(str(path), artifact_path=str(Path(artifact).parent))
    mlflow.log_param("data.n_training_case_ids", len(set(ids)))


def check_trainable(frame: pd.DataFrame) -> None:
    counts = frame["department"].value_counts()
    if len(counts) < 2:
        raise TrainingError(f"need at least 2 departments to train a router, found {len(counts)}")
    small = counts[counts < MIN_CASES_PER_DEPARTMENT]
    if not small.empty:
        listed = ", ".join(f"{d} ({n})" for d, n in small.items())
        raise TrainingError(
            f"departments with fewer than {MIN_CASES_PER_DEPARTMENT} cases cannot be evaluated: {listed}; "
            "add cases or merge these labels"
        )


def out_of_fold_proba(frame: pd.DataFrame, config: TrainConfig, progress: Progress) -> tuple[np.ndarray, list[str]]:
    """Probabilities for every training case from a model that did not see it (grouped folds)."""
    proba, classes, _ = out_of_fold_scores(frame, config, progress)
    return proba, classes


def out_of_fold_scores(
    frame: pd.DataFrame, config: TrainConfig, progress: Progress
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """`out_of_fold_proba`, and each case's largest raw class score from the same models (None for a
    router without raw scores): what the taxonomy guard's threshold is chosen on."""
    y = np.asarray(frame["department"], dtype=object)
    classes = sorted(set(y))
    proba = np.zeros((len(frame), len(classes)))
    raw: np.ndarray | None = np.full(len(frame), np.nan)
    cv = group_folds(frame, config.threshold_folds, config.seed)
    task = progress.add_task("out-of-fold predictions for thresholds", total=cv.get_n_splits())
    for fit_idx, pred_idx in cv.split(np.zeros(len(frame)), y, np.asarray(frame["group_key"], dtype=object)):
        model = build_router(config.features, config.classifier, config.seed)
        model.fit(frame.iloc[fit_idx][INPUT_COLUMNS], y[fit_idx])
        cols = [classes.index(c) for c in model.classes_]
        features = model[:-1].transform(frame.iloc[pred_idx][INPUT_COLUMNS])
        proba[np.ix_(pred_idx, cols)] = model[-1].predict_proba(features)
        scores = max_class_score(model[-1], features)
        if scores is None or raw is None:
            raw = None
        else:
            raw[pred_idx] = scores
        progress.advance(task)
    return proba, classes, raw


def fit_taxonomy_guard(oof: np.ndarray, oof_raw: np.ndarray, classes: list[str], thresholds: dict[str, float | None],
                       flag_rate: float) -> TaxonomyGuard:
    """The taxonomy guard, chosen on out-of-fold scores of the training cases only, knowing which of them the
    department thresholds (chosen on the same predictions) let through: its budget goes where it changes the
    outcome (`models.taxonomy_guard`)."""
    limits = np.array([np.inf if thresholds.get(c) is None else thresholds[c] for c in classes])
    return TaxonomyGuard.from_scores(oof_raw, flag_rate, routed=let_through(oof, limits))


def department_report(train_df: pd.DataFrame, thresholds: dict[str, float | None], config: TrainConfig) -> dict:
    """Training cases per department, and the rare ones: fewer than two cases per calibration fold, so some
    out-of-fold fits calibrate them on fewer folds than configured and few of their cases can vouch for a
    threshold; and those routed but always sent to review (no threshold reaches the target precision).
    Logged too, so a new city sees which departments need more cases."""
    counts = train_df["department"].value_counts()
    floor = 2 * config.classifier.calibration_folds
    rare = {str(d): int(n) for d, n in counts.items() if n < floor}
    always_reviewed = sorted(str(d) for d, t in thresholds.items() if t is None)
    if rare:
        logger.warning("departments with fewer than %d training cases (calibrated on fewer folds): %s", floor,
                       ", ".join(f"{d} ({n})" for d, n in rare.items()))
    if always_reviewed:
        logger.warning("departments whose cases always go to review (no threshold reaches precision %.2f): %s",
                       config.target_precision, ", ".join(always_reviewed))
    return {"training_cases": {str(d): int(n) for d, n in counts.items()},
            "rare": rare, "rare_below": floor, "always_reviewed": always_reviewed}


def misrouted(test: pd.DataFrame, proba: np.ndarray, classes: list[str], limit: int) -> pd.DataFrame:
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    wrong = test.assign(predicted=pred, confidence=proba.max(axis=1))
    wrong = wrong[wrong["predicted"] != wrong["department"]].sort_values("confidence", ascending=False)
    return wrong[["case_id", "title", "department", "predicted", "confidence"]].head(limit)


def train(
    data: Sequence[str | Path],
    config: TrainConfig,
    *,
    encoding: str = "utf-8",
    progress: Progress | None = None,
    loaded: LoadedCases | None = None,
    hotspot_config: HotspotConfig | None = None,
    engine: str = "local",
    risk_fitter: BoosterFitter | None = None,
    engine_params: dict[str, object] | None = None,
    risk_labels: pd.DataFrame | None = None,
    register: bool = True,
    comparison: ComparisonSet | None = None,
) -> TrainResult:
    """Fit, evaluate, log and register one model.

    The champion alias moves only to a candidate that beats the champion on the same cases: the fixed
    ``comparison`` set (`training.comparison`; its cases are held out of training), or later reviewers'
    decisions (`triage promote`). Without either, a new version is the challenger, unless there is no
    champion yet. ``register=False`` logs the run and its model without registering a version.

    ``risk_labels``: annotated cases joined by `training.risk_labels.join_risk_labels`; they set the risk
    level of their copies among the training cases, and the others are added. Cases with a risk level and
    no department train (and evaluate) the risk model only: the router never sees them.

    ``engine`` names where the risk model's LightGBM fits run ("local": this process; "dask": through
    ``risk_fitter``, see `training.dask_train`); it and ``engine_params`` (e.g. the worker count) are logged
    as MLflow params, so a run says how it was trained.
    """
    if (engine == "local") != (risk_fitter is None):
        raise ValueError(f"engine {engine!r} and risk_fitter disagree: only a non-local engine takes a fitter")
    tokenizer.use(config.tokenizer)  # before any text is read: the model is trained and served with it
    started = time.perf_counter()
    progress = progress or Progress(disable=True)
    loaded = loaded or load_cases(data, require_department=True, training=True, encoding=encoding,
                                  keep_risk_only=True)
    frame = loaded.frame
    join = JoinReport()
    if risk_labels is not None and len(risk_labels):
        frame, join = merge_risk_labels(frame, risk_labels)
    held_for_comparison = 0
    if comparison is not None:
        frame, held_for_comparison = without_comparison_cases(frame, comparison)
        if held_for_comparison:
            logger.info("held %d cases of the comparison set out of training", held_for_comparison)
    routed = frame["department"].notna()
    check_trainable(frame[routed])
    # Burst statistics at each case's intake (time-ordered replay, no look-ahead): risk-model inputs.
    frame = attach_hot_issues(frame, hotspot_config or HotspotConfig())
    train_df, test_df = train_test_split_grouped(frame[routed.to_numpy()].reset_index(drop=True), config.test_size,
                                                 config.seed)
    risk_train, risk_test = split_risk_only(frame[~routed.to_numpy()].reset_index(drop=True), config)
    logger.info("training on %d cases, evaluating on %d held-out cases (risk only: %d + %d)", len(train_df),
                len(test_df), len(risk_train), len(risk_test))

    with progress:
        oof, classes, oof_raw = out_of_fold_scores(train_df, config, progress)
        thresholds = choose_thresholds(
            train_df["department"], oof, classes, config.target_precision,
            min_threshold=config.min_threshold, min_support=config.min_threshold_support,
        )
        task = progress.add_task("fitting the router on the training split", total=1)
        router = build_router(config.features, config.classifier, config.seed)
        router.fit(train_df[INPUT_COLUMNS], np.asarray(train_df["department"], dtype=object))
        progress.advance(task)
        task = progress.add_task("fitting the risk model", total=1)
        try:
            # Router probabilities it did not train on, as serving will feed it on unseen cases: out of fold
            # for its own cases, the fitted router's for risk-only cases (it never saw them).
            risk_frame = pd.concat([train_df, risk_train], ignore_index=True)
            risk_proba = np.vstack([oof, _router_proba(router, risk_train, classes)])
            risk = RiskModel(config.risk).fit(risk_frame, router_proba=risk_proba, router_classes=classes,
                                              seed=config.seed, fitter=risk_fitter)
        except ValueError as exc:
            raise TrainingError(f"cannot train the risk model: {exc}") from None
        progress.advance(task)

    fit_seconds = time.perf_counter() - started
    guard = None
    if oof_raw is not None and config.out_of_taxonomy_flag_rate > 0:
        guard = fit_taxonomy_guard(oof, oof_raw, classes, thresholds, config.out_of_taxonomy_flag_rate)
    bundle = TriageBundle(
        router=router, thresholds=thresholds, target_precision=config.target_precision, risk=risk,
        taxonomy_guard=guard,
    )
    # Held-out cases are assessed as serving and promotion assess them (`TriageBundle.assess`), so the
    # figures logged here describe the rules that serve.
    held_out = pd.concat([test_df, risk_test], ignore_index=True)
    assessed = bundle.assess(held_out, bursts=frame_bursts(held_out), reasons=False)
    routed = assessed[: len(test_df)]
    proba = np.vstack([a.route.scores for a in routed]) if routed else np.zeros((0, len(bundle.classes)))
    evaluation = evaluate_router(test_df["department"], proba, bundle.classes, thresholds)
    if guard is not None:
        # In-taxonomy held-out cases the guard sends to review (about the flag rate, if it generalises).
        outside = [a.route.out_of_taxonomy for a in routed]
        evaluation.metrics["out_of_taxonomy_rate"] = float(np.mean(outside)) if outside else 0.0
    risk_metrics, risk_confusion = evaluate_risk(held_out, assessed)
    evaluation.metrics.update(risk_metrics)
    bundle.reference = training_reference(bundle, train_df, test_df, routed)
    digest = data_digest(frame)
    commit = git_commit()
    bundle.metadata = {
        "model_name": config.registry.model_name,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": bundle.classes,
        "thresholds": thresholds,
        "target_precision": config.target_precision,
        "metrics": {
            k: evaluation.metrics[k]
            for k in ("accuracy", "macro_f1", "coverage", "ece", "n_eval", "risk_red_recall", "risk_red_precision",
                      "risk_macro_f1")
            if k in evaluation.metrics
        },
        "risk": risk.describe(),
        "taxonomy_guard": None if guard is None else guard.describe(),
        "data_digest": digest,
        "git_commit": commit,
        "text_pipeline_version": TEXT_PIPELINE_VERSION,
        "tokenizer": tokenizer.spec().as_dict(),
        "n_train": len(train_df),
        "train_engine": engine,
        "config": config.model_dump(mode="json"),
    }

    configure_tracking()
    experiment_id = ensure_experiment(config.registry.experiment_name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        n_weak = int(risk_frame["risk_level"].isna().sum()) if "risk_level" in risk_frame else len(risk_frame)
        mlflow.set_tags({"mlflow.source.git.commit": commit or "unknown", "data_digest": digest,
                         "text_pipeline_version": TEXT_PIPELINE_VERSION,
                         "risk.weak_labels": f"{n_weak}/{len(risk_frame)}",
                         "risk.labels": "weak (cue rules)" if n_weak == len(risk_frame)
                         else ("reviewed" if n_weak == 0 else "reviewed + weak (cue rules)")})
        mlflow.log_params(config.flat_params())
        mlflow.log_params({f"data.{k}": v for k, v in loaded.report.summary().items()})
        mlflow.log_params({f"data.{k}": v for k, v in join.summary().items()})
        mlflow.log_params({"data.n_risk_only_train": len(risk_train), "data.n_risk_only_test": len(risk_test)})
        mlflow.log_params({"data.n_train": len(train_df), "data.n_test": len(test_df),
                           "data.file_names": ", ".join(Path(p).name for p in data)[:500]})
        mlflow.log_params({"train.engine": engine, **{f"train.{k}": v for k, v in (engine_params or {}).items()}})
        if comparison is not None:
            mlflow.log_params({"comparison.path": str(comparison.path)[:500], "comparison.version": comparison.version,
                               "comparison.n_cases": len(comparison.cases),
                               "comparison.held_out_of_training": held_for_comparison})
        dataset = mlflow.data.from_pandas(
            frame[["case_id", "title", "body", "department"]].astype(str),
            name="training-cases", targets="department", source=_dataset_source(data),
        )
        mlflow.log_input(dataset, context="training")
        mlflow.log_metrics({k: v for k, v in evaluation.metrics.items() if np.isfinite(v)})
        mlflow.log_metric("train_seconds", fit_seconds)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            plot_confusion(evaluation.confusion, out / "confusion_matrix.png")
            evaluation.confusion.to_csv(out / "confusion_matrix.csv")
            evaluation.per_class.to_csv(out / "per_department_report.csv")
            misrouted(test_df, proba, bundle.classes, config.misrouted_examples).to_csv(
                out / "misrouted_examples.csv", index=False
            )
            (out / "thresholds.json").write_text(json.dumps(thresholds, ensure_ascii=False, indent=2), "utf-8")
            report = {**loaded.report.summary(), "departments": department_report(train_df, thresholds, config)}
            (out / "data_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
            (out / "risk_model.json").write_text(
                json.dumps(risk.describe(), ensure_ascii=False, indent=2, default=str), "utf-8"
            )
            if risk_confusion is not None:
                risk_confusion.to_csv(out / "risk_confusion_matrix.csv")
            mlflow.log_artifacts(str(out), artifact_path="evaluation")
            # The drift report's reference (the training token list stays in the bundle only).
            mlflow.log_dict(without_tokens(bundle.reference), REFERENCE_PROFILE_ARTIFACT)
            (out / "data").mkdir()
            log_training_cases(risk_frame, out / "data")  # every case the router or the risk model saw
            bundle_path = bundle.save(out / "bundle")
            example = test_df[INPUT_COLUMNS].head(3).astype(str).reset_index(drop=True)
            signature = infer_signature(example, routes_frame(bundle, example))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_ENTRY),  # models-from-code: nothing pickled but the bundle
                artifacts={"bundle": str(bundle_path)},
                signature=signature,
                input_example=example,
                pip_requirements=_pip_requirements(),
            )
    result = TrainResult(
        run_id=run.info.run_id, experiment_id=experiment_id, model_name=config.registry.model_name,
        model_version=None, alias=None, evaluation=evaluation, bundle=bundle,
        link=run_link(experiment_id, run.info.run_id), held_out_for_comparison=held_for_comparison,
    )
    if not register:
        result.alias_reason = "not registered (--no-register): the run and its model are logged only"
        mlflow.MlflowClient().set_tag(run.info.run_id, "registry.alias", "not registered")
        return result
    result.model_version = _register(config.registry.model_name, info, run.info.run_id)
    mlflow.MlflowClient().set_model_version_tag(config.registry.model_name, result.model_version, "data_digest", digest)
    _gate(result, comparison, config)
    logger.info("registered %s version %s as %s", config.registry.model_name, result.model_version, result.alias)
    return result


def _register(name: str, info: object, run_id: str) -> str:
    """A new version of `name` from the logged model, through the client (MLflow's fluent registration
    prints to stderr on every run); returns the version."""
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    version = client.create_model_version(
        name, source=info.model_uri, run_id=run_id, model_id=info.model_id  # type: ignore[attr-defined]
    )
    return str(version.version)


def _dataset_source(data: Sequence[str | Path]) -> object:
    """Where the training cases came from, as MLflow's local-file source: the file, or the folder holding
    several. Named explicitly: from a bare path MLflow guesses between two registrations of that source
    and warns on every run."""
    from mlflow.data.dataset_source_registry import get_registered_sources, resolve_dataset_source

    paths = [Path(p).resolve() for p in data]
    if not paths:
        return "in-memory"
    where = paths[0] if len(paths) == 1 else Path(os.path.commonpath(paths))
    local = next(s for s in get_registered_sources() if s.__name__ == "LocalArtifactDatasetSource")
    return resolve_dataset_source(str(where), candidate_sources=[local])


def _gate(result: TrainResult, comparison: ComparisonSet | None, config: TrainConfig) -> None:
    """Set the new version's alias (champion or challenger) and say why, on the result and the run."""
    from training.promote import Gate, PromotionError, promote

    client = mlflow.MlflowClient()
    name, version = result.model_name, str(result.model_version)
    try:
        previous = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        previous = None
    if previous is None:
        result.alias, result.alias_reason = CHAMPION, f"there was no champion: version {version} is the champion"
        client.set_registered_model_alias(name, CHAMPION, version)
    elif comparison is None:
        result.alias = CHALLENGER
        result.alias_reason = (
            f"the champion stays version {previous}: this run was evaluated on its own held-out split, which is "
            "not a comparison with the champion; compare on a fixed set (--compare-on FILE, or "
            f"registry.comparison_set in the config) or on reviewers' decisions (triage promote --candidate {version})"
        )
    else:
        gate = Gate(cases_word=f"cases of the comparison set {comparison.describe()}",
                    fewer_hint="use a comparison set the champion was not trained on, or lower "
                               "registry.comparison_min_cases", must_beat=True)
        try:
            outcome = promote(version, comparison.cases, model_name=name, source=comparison.describe(), gate=gate,
                              min_cases=config.registry.comparison_min_cases)
        except PromotionError as exc:
            result.alias, result.alias_reason = CHALLENGER, f"the champion stays version {previous}: {exc}"
        else:
            result.comparison = outcome
            result.alias = CHAMPION if outcome.promoted else CHALLENGER
            result.alias_reason = (
                f"version {version} is the champion (was {previous}): {outcome.reason}" if outcome.promoted
                else f"the champion stays version {previous}: {outcome.reason}"
            )
    if result.alias == CHALLENGER:
        client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_tag(result.run_id, "registry.alias", result.alias or "")
    client.set_tag(result.run_id, "registry.version", version)
    client.set_tag(result.run_id, "registry.previous_champion", previous or "none")
    client.set_tag(result.run_id, "registry.reason", result.alias_reason[:5000])


def training_reference(
    bundle: TriageBundle, train_df: pd.DataFrame, test_df: pd.DataFrame, assessed: Sequence[Assessment]
) -> dict:
    """The reference profile (`models.profile`): the held-out cases as the bundle answers them, as serving
    will answer unseen cases (a profile of the training split would carry its in-sample confidence), with
    every token of the training split as what the model has seen."""
    held = prepared_cases(test_df[INPUT_COLUMNS])
    figures = [
        case_figures(case, a.route.label, a.route.confidence, a.risk.level if a.risk is not None else None)
        for case, a in zip(held, assessed, strict=True)
    ]
    seen = {t for case in prepared_cases(train_df[INPUT_COLUMNS]) for t in case.tokens}
    return reference_from_training(figures, seen, router_vocabulary(bundle.router))


def split_risk_only(cases: pd.DataFrame, config: TrainConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cases with a risk level and no department, split like the router's (grouped, stratified by level);
    all in training when there are too few of a level to hold any out."""
    counts = cases["risk_level"].value_counts()
    if len(cases) < 10 or len(counts) < 2 or int(counts.min()) < 2:
        return cases, cases.iloc[:0]
    return train_test_split_grouped(cases, config.test_size, config.seed, label="risk_level")


def _router_proba(router: object, cases: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """The fitted router's probabilities for ``cases`` in the column order of ``classes``."""
    out = np.zeros((len(cases), len(classes)))
    if len(cases):
        proba = router.predict_proba(cases[INPUT_COLUMNS])  # type: ignore[attr-defined]
        fitted = [str(c) for c in router.classes_]  # type: ignore[attr-defined]
        for j, name in enumerate(classes):
            if name in fitted:
                out[:, j] = proba[:, fitted.index(name)]
    return out


def evaluate_risk(cases: pd.DataFrame, assessed: Sequence[Assessment]) -> tuple[dict[str, float], pd.DataFrame | None]:
    """Risk metrics on the assessed cases that carry a real (not weak) risk level: the levels serving gives
    (bands, then the cue rules' safety floor), since they come from `TriageBundle.assess`."""
    if "risk_level" not in cases.columns or not assessed or assessed[0].risk is None:
        return {}, None
    has = cases["risk_level"].notna().to_numpy()
    if not has.any():
        return {}, None
    y = np.asarray(cases["risk_level"][has], dtype=object)
    pred = np.asarray([a.risk.level for a, h in zip(assessed, has, strict=True) if h and a.risk], dtype=object)
    levels = ["red", "yellow", "green"]
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=levels, zero_division=0)
    metrics = {"risk_n_eval": float(has.sum()), "risk_macro_f1": float(np.mean(f))}
    for i, level in enumerate(levels):
        metrics[f"risk_{level}_precision"] = float(p[i])
        metrics[f"risk_{level}_recall"] = float(r[i])
        metrics[f"risk_{level}_f1"] = float(f[i])
    confusion = pd.DataFrame(confusion_matrix(y, pred, labels=levels), index=levels, columns=levels)
    return metrics, confusion


def _pip_requirements() -> list[str]:
    """The serving side must run the versions that pickled the model (pinned in pyproject)."""
    from importlib.metadata import version

    names = ["scikit-learn", "lightgbm", "jieba", "numpy", "scipy", "pandas", "joblib", "mlflow"]
    return [f"{n}=={version(n)}" for n in names]
