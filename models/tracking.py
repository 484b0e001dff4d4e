"""Where MLflow keeps runs and models, shared by training, batch prediction and serving.

Default: a local SQLite store `mlflow.db` with artefacts in `mlartifacts/`, both in the working
directory; `MLFLOW_TRACKING_URI` (and `TRIAGE_MLFLOW_ARTIFACTS` for new experiments) override it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_DB = "mlflow.db"
#: Where `triage retrain` records each scheduled run's outcome (and the dashboard reads the latest).
RETRAINING_EXPERIMENT = "retraining"
DEFAULT_ARTIFACTS = "mlartifacts"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def artifact_root() -> str:
    root = os.environ.get("TRIAGE_MLFLOW_ARTIFACTS") or str(Path(DEFAULT_ARTIFACTS).resolve())
    return root if "://" in root else Path(root).resolve().as_uri()


def configure_tracking() -> str:
    """Point the MLflow client at the configured store (tracking and registry) and return its URI."""
    # Usage telemetry would try to reach the internet from training and serving; keep it off unless asked.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow  # here, not at import: `triage predict` on a bundle folder never needs it (~1 s)

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it with our artefact root the first time."""
    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root())


def run_link(experiment_id: str, run_id: str) -> str:
    """Where to look at a run: the tracking server's page, or how to start the UI for a local store."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id} "
        f"(start the UI first: make mlflow-ui in the checkout, or mlflow ui --backend-store-uri {uri} --port 5000)"
    )


def latest_run(experiment_name: str) -> dict[str, str] | None:
    """The newest run of an experiment as its id, start time and own tags (MLflow's `mlflow.*` left out);
    None when the experiment has no run, or the local store does not exist (reading must not create one)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    run = runs[0]
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    started = datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC).isoformat(timespec="seconds")
    return {"run_id": run.info.run_id, "started_at": started, **tags}
