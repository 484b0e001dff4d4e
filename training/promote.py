"""`triage promote`: move the `champion` alias to a candidate only if reviewers' decisions say it is not worse.

Both models are scored on the same evaluation set: reviewed cases (from the audit store or a file written
by `triage export-reviews`) that *neither* model was fitted on. What a model was fitted on comes from its
training run's artefacts (`data/training_case_ids.txt.gz` and text fingerprints, see `training.train`);
for a model trained before those existed, only cases reviewed after it was trained count, and the
comparison says so.

The candidate is promoted when its macro-F1 on the reviewers' departments is at least the champion's, its
red precision (of the cases it calls red, the share reviewers made red) is at least the champion's, and,
when the set holds red cases, its recall of the reviewers' red level is at least the champion's. Recall
alone would let a model that calls every case red through; precision stops it. Fewer
than `min_cases` evaluation cases is a refusal: a comparison on a handful of cases decides nothing.
Every comparison is logged to MLflow (experiment `promotion`), promoted or not.
"""

from __future__ import annotations

import gzip
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from features import tokenizer
from models.hotspot_settings import load_hotspot_config
from models.mlflow_model import CHAMPION, MODEL_NAME, LoadedModel, load_model, routes_frame
from models.tracking import configure_tracking, ensure_experiment, run_link
from training.loading import DataError, load_cases
from training.predict import attach_hot_issues
from training.reviews_export import load_reviewed, reviews_frame
from training.train import TRAINING_CASE_IDS_ARTIFACT, TRAINING_TEXT_KEYS_ARTIFACT, text_fingerprint

logger = logging.getLogger(__name__)

EXPERIMENT = "promotion"
DEFAULT_MIN_CASES = 30
PROMOTED = "promoted"
REFUSED = "refused"
RED = "red"


class PromotionError(ValueError):
    """The comparison cannot be made (unknown version, unreadable reviews...); nothing was changed."""


@dataclass(frozen=True)
class TrainingSet:
    """What one model was fitted on, or (when its run does not say) when it was trained."""

    case_ids: frozenset[str] | None
    text_keys: frozenset[str] | None
    trained_at: datetime | None
    note: str


@dataclass(frozen=True)
class ModelScore:
    version: str
    macro_f1: float
    red_recall: float | None
    held_out_rule: str
    #: Of the cases the model called red, the share reviewers made red; None when it called none red.
    red_precision: float | None = None
    #: Cases the model called red.
    called_red: int = 0


@dataclass
class PromotionResult:
    model_name: str
    candidate: ModelScore | None
    champion: ModelScore | None
    candidate_version: str
    champion_version: str | None
    promoted: bool
    reason: str
    n_eval: int
    n_red: int
    run_id: str = ""
    link: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return PROMOTED if self.promoted else REFUSED


# -- reviewed cases ---------------------------------------------------------------------------------


def reviews_from_file(path: Path, *, since: datetime | None = None) -> pd.DataFrame:
    """Reviewed cases from an exported file, read as training reads it (DataError names file/row/column)."""
    frame = load_cases([path], require_department=True).frame
    if "reviewed_at" not in frame.columns:
        raise DataError(path, "no reviewed_at column; promote needs a file written by `triage export-reviews`",
                        column="reviewed_at")
    return _since(_with_review_times(frame, path), since)


def reviews_from_store(database_url: str, *, since: datetime | None = None) -> pd.DataFrame:
    """Reviewed cases from the audit store, passed through the same loader as a file (same text cleaning)."""
    frame = reviews_frame(load_reviewed(database_url, since=since))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reviews.parquet"
        frame.to_parquet(path, index=False)
        loaded = load_cases([path], require_department=True).frame
    return _with_review_times(loaded, path)


def _with_review_times(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    times = pd.to_datetime(frame["reviewed_at"], utc=True, errors="coerce", format="ISO8601")
    bad = times.isna()
    if bad.any():
        row = int(frame.loc[bad, "source_row"].iloc[0])
        raise DataError(path, "reviewed_at is empty or not a date", row=row, column="reviewed_at")
    return frame.assign(reviewed_at=times)


def _since(frame: pd.DataFrame, since: datetime | None) -> pd.DataFrame:
    if since is None:
        return frame
    cutoff = pd.Timestamp(since if since.tzinfo else since.replace(tzinfo=UTC))
    return frame[frame["reviewed_at"] >= cutoff].reset_index(drop=True)


# -- what each model saw ----------------------------------------------------------------------------


def _read_lines(run_id: str, artifact: str, directory: str) -> frozenset[str] | None:
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=directory)
        text = gzip.decompress(Path(local).read_bytes()).decode("utf-8")
    except Exception as exc:  # missing artefact (older run), unreachable store, corrupt file
        logger.info("run %s has no usable %s (%s)", run_id, artifact, type(exc).__name__)
        return None
    return frozenset(line for line in text.splitlines() if line)


def training_set(model: LoadedModel) -> TrainingSet:
    """The cases a registered model was fitted on, from its run; else when it was trained."""
    ids = keys = None
    if model.run_id:
        with tempfile.TemporaryDirectory() as tmp:
            ids = _read_lines(model.run_id, TRAINING_CASE_IDS_ARTIFACT, tmp)
            keys = _read_lines(model.run_id, TRAINING_TEXT_KEYS_ARTIFACT, tmp)
    if ids is not None:
        return TrainingSet(ids, keys, None, f"v{model.version}: excluded its {len(ids)} training cases")
    trained_at = _trained_at(model)
    if trained_at is None:
        raise PromotionError(
            f"version {model.version}: its run lists no training cases ({TRAINING_CASE_IDS_ARTIFACT}) and the "
            "model does not say when it was trained; cannot tell which reviewed cases it has not seen"
        )
    return TrainingSet(
        None, None, trained_at,
        f"v{model.version}: its run lists no training cases ({TRAINING_CASE_IDS_ARTIFACT}); "
        f"only cases reviewed after it was trained ({trained_at.isoformat(timespec='seconds')}) count",
    )


def _trained_at(model: LoadedModel) -> datetime | None:
    text = model.bundle.metadata.get("trained_at")
    if text:
        try:
            value = datetime.fromisoformat(str(text))
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        except ValueError:
            pass
    if model.name and model.version:
        try:
            created = mlflow.MlflowClient().get_model_version(model.name, model.version).creation_timestamp
            return datetime.fromtimestamp(created / 1000, tz=UTC)
        except Exception:  # no registry entry: no date
            return None
    return None


def held_out(reviews: pd.DataFrame, sets: Sequence[TrainingSet]) -> pd.DataFrame:
    """The reviewed cases that no model in `sets` was fitted on."""
    keep = np.ones(len(reviews), dtype=bool)
    # `dedup_key` is the loader's text key, the one training fingerprinted.
    fingerprints = [text_fingerprint(k) for k in reviews["dedup_key"]]
    for seen in sets:
        if seen.case_ids is not None:
            keep &= ~reviews["case_id"].astype(str).isin(seen.case_ids).to_numpy()
            if seen.text_keys is not None:
                keep &= np.array([f not in seen.text_keys for f in fingerprints], dtype=bool)
        elif seen.trained_at is not None and "reviewed_at" in reviews.columns:
            keep &= (reviews["reviewed_at"] > pd.Timestamp(seen.trained_at)).to_numpy()
        # A fixed comparison set has no review times: a model that does not say what it was fitted on
        # is compared on all of it (its note says so).
    return reviews[keep].reset_index(drop=True)


# -- scoring and deciding ---------------------------------------------------------------------------


def score(model: LoadedModel, cases: pd.DataFrame, rule: str) -> ModelScore:
    """Macro-F1 over the reviewers' departments, and recall of their red level (None without red cases).

    The label set is the departments reviewers decided, the same for every model, so a department one
    model does not know counts against it rather than disappearing from its average.
    """
    tokenizer.evaluate_with(model.bundle.metadata.get("tokenizer"))  # each model cut as it was trained
    routed = routes_frame(model.bundle, cases.reset_index(drop=True))
    truth = cases["department"].astype(str).to_numpy()
    f1 = f1_score(truth, routed["department"].astype(str).to_numpy(), labels=sorted(set(truth)),
                  average="macro", zero_division=0)
    red = (cases["risk_level"] == RED).to_numpy()
    levels = routed["risk_level"].to_numpy() if "risk_level" in routed.columns else np.full(len(cases), None)
    called = levels == RED
    recall = float(np.mean(called[red])) if red.any() else None
    precision = float(np.mean(red[called])) if called.any() else None
    return ModelScore(version=str(model.version), macro_f1=float(f1), red_recall=recall, held_out_rule=rule,
                      red_precision=precision, called_red=int(called.sum()))


@dataclass(frozen=True)
class Gate:
    """What a comparison is made on and what it asks: the review gate (`triage promote`: reviewed cases,
    not worse) or the training gate (`triage train --compare-on`: a fixed labelled set, must beat)."""

    cases_word: str = "reviewed cases"
    fewer_hint: str = "review more cases or lower --min-cases"
    must_beat: bool = False


REVIEW_GATE = Gate()


def decide(
    candidate: ModelScore, champion: ModelScore, n_eval: int, n_red: int, min_cases: int, gate: Gate = REVIEW_GATE
) -> tuple[bool, str]:
    """(promote?, why): not worse on macro-F1 (better, for a gate that must beat), and not worse on red
    recall when there are red cases."""
    if n_eval < min_cases:
        return False, (f"only {n_eval} {gate.cases_word} are held out from both models' training "
                       f"(at least {min_cases} needed); {gate.fewer_hint}")
    f1 = f"macro-F1 {candidate.macro_f1:.4f} vs champion {champion.macro_f1:.4f}"
    if candidate.macro_f1 < champion.macro_f1:
        return False, f"candidate is worse on macro-F1: {f1}"
    if gate.must_beat and candidate.macro_f1 == champion.macro_f1:
        return False, f"candidate does not beat the champion on macro-F1: {f1}"
    if candidate.red_precision is not None and champion.red_precision is not None \
            and candidate.red_precision < champion.red_precision:
        return False, (f"candidate calls red more cases reviewers did not: red precision "
                       f"{candidate.red_precision:.4f} ({candidate.called_red} called red) vs champion "
                       f"{champion.red_precision:.4f} ({champion.called_red}) ({f1})")
    if n_red == 0:
        better = "better" if gate.must_beat else "not worse"
        return True, f"{better} on macro-F1 ({f1}); no red cases among the {n_eval} evaluation cases, " \
                     "red recall not compared"
    red = f"red recall {candidate.red_recall:.4f} vs champion {champion.red_recall:.4f} on {n_red} red cases"
    if (candidate.red_recall or 0.0) < (champion.red_recall or 0.0):
        return False, f"candidate misses more red cases: {red} ({f1})"
    better = "better" if gate.must_beat else "not worse"
    return True, f"{better} on macro-F1 ({f1}) and not worse on red recall ({red})"


def _load(uri: str, what: str) -> LoadedModel:
    tokenizer.release()  # the model's own segmenter is set when it is unpickled
    try:
        return load_model(uri)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PromotionError(f"cannot load the {what} {uri}: {type(exc).__name__}: {first}") from None


def _champion_version(model_name: str) -> str | None:
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None


def promote(
    candidate_version: str,
    reviews: pd.DataFrame | None,
    *,
    model_name: str = MODEL_NAME,
    min_cases: int = DEFAULT_MIN_CASES,
    source: str = "",
    since: datetime | None = None,
    gate: Gate = REVIEW_GATE,
) -> PromotionResult:
    """Compare the candidate with the champion on held-out reviewed cases; move the alias if not worse.

    `reviews` is only needed when there is a champion (`None` is allowed otherwise). Logs one MLflow run
    in the `promotion` experiment whatever the outcome. `gate`: the training gate compares on a fixed
    labelled set instead (same held-out rule) and must beat the champion.
    """
    configure_tracking()
    candidate = _load(f"models:/{model_name}/{candidate_version}", "candidate")
    champion_version = _champion_version(model_name)
    notes: list[str] = []
    cand_score = champ_score = None
    n_eval = n_red = 0
    if champion_version is None:
        promoted, reason = True, f"there is no champion yet: version {candidate.version} becomes the champion"
    elif champion_version == str(candidate.version):
        promoted, reason = True, f"version {candidate.version} already is the champion; nothing to change"
    else:
        if reviews is None:
            raise PromotionError(
                f"there are no {gate.cases_word} to compare the candidate with the champion"
            )
        champion = _load(f"models:/{model_name}@{CHAMPION}", "champion")
        sets = [training_set(candidate), training_set(champion)]
        notes = [s.note for s in sets]
        cases = held_out(reviews, sets)
        n_eval = len(cases)
        n_red = int((cases["risk_level"] == RED).sum()) if n_eval else 0
        if n_eval < min_cases:
            promoted, reason = decide(ModelScore("", 0, None, ""), ModelScore("", 0, None, ""), n_eval, n_red,
                                      min_cases, gate)
        else:
            cases = attach_hot_issues(cases, load_hotspot_config())  # same burst inputs for both models
            cand_score = score(candidate, cases, notes[0])
            champ_score = score(champion, cases, notes[1])
            promoted, reason = decide(cand_score, champ_score, n_eval, n_red, min_cases, gate)
    result = PromotionResult(
        model_name=model_name, candidate=cand_score, champion=champ_score,
        candidate_version=str(candidate.version), champion_version=champion_version, promoted=promoted,
        reason=reason, n_eval=n_eval, n_red=n_red, notes=notes,
    )
    if promoted and champion_version != str(candidate.version):
        mlflow.MlflowClient().set_registered_model_alias(model_name, CHAMPION, str(candidate.version))
    _log_run(result, min_cases=min_cases, source=source, since=since)
    logger.info("promotion of %s version %s: %s", model_name, candidate.version, result.decision)
    return result


def _log_run(result: PromotionResult, *, min_cases: int, source: str, since: datetime | None) -> None:
    experiment_id = ensure_experiment(EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"promote v{result.candidate_version}") as run:
        mlflow.log_params({
            "model_name": result.model_name,
            "candidate_version": result.candidate_version,
            "champion_version": result.champion_version or "none",
            "min_cases": min_cases,
            "reviews_source": source[:500] or "none",
            "since": since.isoformat() if since else "none",
        })
        metrics: dict[str, float] = {"n_eval": result.n_eval, "n_red": result.n_red}
        for role, model_score in (("candidate", result.candidate), ("champion", result.champion)):
            if model_score is not None:
                metrics[f"{role}_macro_f1"] = model_score.macro_f1
                if model_score.red_recall is not None:
                    metrics[f"{role}_red_recall"] = model_score.red_recall
                if model_score.red_precision is not None:
                    metrics[f"{role}_red_precision"] = model_score.red_precision
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"decision": result.decision, "reason": result.reason[:5000]})
        mlflow.log_dict(_comparison(result), "comparison.json")
    result.run_id = run.info.run_id
    result.link = run_link(experiment_id, run.info.run_id)
    try:
        mlflow.MlflowClient().set_model_version_tag(
            result.model_name, result.candidate_version, "promotion", f"{result.decision} (run {result.run_id})"
        )
    except mlflow.exceptions.MlflowException as exc:  # the comparison is logged; a tag is a convenience
        logger.warning("could not tag version %s: %s", result.candidate_version, type(exc).__name__)


def _comparison(result: PromotionResult) -> dict[str, Any]:
    out = asdict(result)
    out["decision"] = result.decision
    out["compared_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return json.loads(json.dumps(out, default=str))
