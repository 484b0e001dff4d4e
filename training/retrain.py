"""`triage retrain`: export reviews, retrain on history + reviews, promote only through the gate, record the outcome.

The scheduled job (deploy/systemd/grievance-triage-retrain.timer) runs this. Reviewed cases are split by
a stable hash of their case id: most train the new model, a fixed share (`gate_share`) never trains any
model and is what the promotion gate (`training.promote`) judges candidate and champion on. The same case
always falls on the same side, so the gate's cases stay unseen across runs.

Every run, whatever its outcome (promoted, refused, failed), is logged as an MLflow run in the
`retraining` experiment with its outcome as tags and `outcome.json`; the dashboard shows the latest
(`models.tracking.latest_run`). A JSON copy is written beside the exported files for the operator.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from models.mlflow_model import CHAMPION, MODEL_NAME
from models.tracking import RETRAINING_EXPERIMENT, configure_tracking, ensure_experiment, run_link
from training.config import TrainConfig
from training.promote import promote, reviews_from_file
from training.reviews_export import load_reviewed, reviews_frame, write_reviews
from training.train import train

logger = logging.getLogger(__name__)

EXPERIMENT = RETRAINING_EXPERIMENT
OUTCOME_ARTIFACT = "outcome.json"
PROMOTED, REFUSED, FAILED = "promoted", "refused", "failed"
DEFAULT_GATE_SHARE = 0.3
_BUCKETS = 10_000


@dataclass
class RetrainOutcome:
    """What one scheduled run did, as logged and shown on the dashboard."""

    status: str  # promoted | refused | failed
    reason: str
    started_at: str
    finished_at: str = ""
    candidate_version: str | None = None
    champion_before: str | None = None
    champion_after: str | None = None
    n_reviews: int = 0
    n_train_reviews: int = 0
    n_gate_reviews: int = 0
    train_run_id: str | None = None
    promotion_run_id: str | None = None
    run_id: str = ""
    link: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_side(case_id: str, gate_share: float) -> bool:
    """Whether a reviewed case is kept for the gate: a stable function of its id (same answer every run)."""
    digest = hashlib.sha256(str(case_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % _BUCKETS < gate_share * _BUCKETS


def split_reviews(frame: pd.DataFrame, gate_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cases to train on, cases the gate judges on)."""
    held = frame["case_id"].astype(str).map(lambda c: gate_side(c, gate_share)).to_numpy(dtype=bool)
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def _champion(model_name: str) -> str | None:
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def retrain(
    history: Sequence[Path],
    database_url: str,
    config: TrainConfig,
    *,
    work_dir: Path,
    gate_share: float = DEFAULT_GATE_SHARE,
    min_cases: int = 30,
) -> RetrainOutcome:
    """One scheduled run. Never raises for an expected failure (no reviews to judge on, bad data): the
    outcome says `failed` and why, and is recorded like any other."""
    configure_tracking()
    model_name = config.registry.model_name or MODEL_NAME
    outcome = RetrainOutcome(status=FAILED, reason="", started_at=_now(), champion_before=_champion(model_name))
    try:
        _run(outcome, history, database_url, config, work_dir, gate_share, min_cases, model_name)
    except Exception as exc:  # unattended: whatever stopped the run is recorded, not lost in a journal
        first = (str(exc).strip().splitlines() or [""])[0]
        outcome.status, outcome.reason = FAILED, f"{type(exc).__name__}: {first}"
        logger.error("retraining failed: %s", outcome.reason)
    outcome.finished_at = _now()
    outcome.champion_after = _champion(model_name)
    record(outcome, work_dir)
    return outcome


def _run(outcome: RetrainOutcome, history: Sequence[Path], database_url: str, config: TrainConfig,
         work_dir: Path, gate_share: float, min_cases: int, model_name: str) -> None:
    work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    reviews = reviews_frame(load_reviewed(database_url))
    to_train, to_judge = split_reviews(reviews, gate_share)
    outcome.n_reviews, outcome.n_train_reviews, outcome.n_gate_reviews = len(reviews), len(to_train), len(to_judge)
    data = list(history)
    if len(to_train):
        train_file = work_dir / f"reviews-train-{stamp}.csv"
        write_reviews(to_train, train_file)
        data.append(train_file)
    gate_file = work_dir / f"reviews-gate-{stamp}.csv"
    write_reviews(to_judge, gate_file)
    result = train(data, config)
    outcome.candidate_version, outcome.train_run_id = result.model_version, result.run_id
    if outcome.champion_before is None:
        outcome.status, outcome.reason = PROMOTED, result.alias_reason
        return
    gate_cases = reviews_from_file(gate_file) if len(to_judge) else None
    promotion = promote(str(result.model_version), gate_cases, model_name=model_name, min_cases=min_cases,
                        source=str(gate_file))
    outcome.promotion_run_id = promotion.run_id
    outcome.status = PROMOTED if promotion.promoted else REFUSED
    outcome.reason = promotion.reason


def record(outcome: RetrainOutcome, work_dir: Path) -> None:
    """Log the outcome as a run of the `retraining` experiment, and as `last-run.json` in `work_dir`."""
    experiment_id = ensure_experiment(EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"retrain {outcome.started_at}") as run:
        mlflow.log_params({"n_reviews": outcome.n_reviews, "n_train_reviews": outcome.n_train_reviews,
                           "n_gate_reviews": outcome.n_gate_reviews})
        tags = {"status": outcome.status, "reason": outcome.reason[:5000],
                "candidate_version": outcome.candidate_version or "none",
                "champion_before": outcome.champion_before or "none",
                "champion_after": outcome.champion_after or "none",
                "finished_at": outcome.finished_at}
        mlflow.set_tags(tags)
        outcome.run_id = run.info.run_id
        outcome.link = run_link(experiment_id, run.info.run_id)
        mlflow.log_dict(outcome.as_dict(), OUTCOME_ARTIFACT)
    try:
        work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (work_dir / "last-run.json").write_text(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2), "utf-8")
    except OSError as exc:  # MLflow has it; the file is a convenience
        logger.warning("could not write %s: %s", work_dir / "last-run.json", exc)
