"""The bundle as an MLflow pyfunc model, and loading it back by registry URI or local path.

Serving loads the model in its own FastAPI process (not `mlflow models serve`) and calls the bundle
directly; the pyfunc wrapper exists so that every registered version is a standard, self-describing
MLflow model that `mlflow.pyfunc.load_model` can score anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.bundle import BUNDLE_FILE, TOP_K, Assessment, ReplayedBurst, TriageBundle, bundle_file
from models.risk import BURST_COLUMNS
from models.risk.features import burst_matrix

logger = logging.getLogger(__name__)

MODEL_NAME = "grievance-triage"
CHAMPION = "champion"
#: The code MLflow logs as the model (see that file).
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")
CHALLENGER = "challenger"


def routes_frame(bundle: TriageBundle, cases: pd.DataFrame) -> pd.DataFrame:
    """One output row per case: department, confidence, needs_review, the top-3 with probabilities and,
    when the bundle has a risk model, the risk level and its probabilities (`TriageBundle.assess`).

    Risk features include burst statistics when `cases` carries the `burst_*` columns (see
    `models.risk.BURST_COLUMNS`); without them the case is scored as if it joined no burst.
    """
    return assessments_frame(bundle, bundle.assess(cases, bursts=frame_bursts(cases), reasons=False))


def assessments_frame(bundle: TriageBundle, assessed: Sequence[Assessment]) -> pd.DataFrame:
    """The output columns of `routes_frame` for assessments already made (batch scoring makes them)."""
    rows: list[dict[str, Any]] = []
    for a in assessed:
        r = a.route
        row: dict[str, Any] = {
            "department": r.label,
            "department_confidence": r.confidence,
            "needs_review": r.needs_review,
            "out_of_taxonomy": r.out_of_taxonomy,
        }
        for i in range(TOP_K):
            label, p = r.top[i] if i < len(r.top) else (None, None)
            row[f"top{i + 1}_department"] = label
            row[f"top{i + 1}_probability"] = p
        rows.append(row)
    columns = ["department", "department_confidence", "needs_review", "out_of_taxonomy"] + [
        f"top{i + 1}_{k}" for i in range(TOP_K) for k in ("department", "probability")
    ]
    out = pd.DataFrame(rows, columns=columns)
    if bundle.risk is not None:
        risks = [a.risk for a in assessed if a.risk is not None]
        out["risk_level"] = pd.Series([r.level for r in risks], dtype=object)
        for level in ("red", "yellow", "green"):
            out[f"risk_probability_{level}"] = pd.Series([r.probabilities[level] for r in risks], dtype=float)
    return out


def frame_bursts(cases: pd.DataFrame) -> list[ReplayedBurst | None] | None:
    """The burst each row of a replayed frame records (`burst_*` columns, ``hot_issue_id``); None when the
    frame has no burst column (scored as joining no burst)."""
    if not any(c in cases.columns for c in BURST_COLUMNS):
        return None
    values = burst_matrix(cases, len(cases))  # the risk model's reading of the columns, so the two agree
    hot = cases["hot_issue_id"].tolist() if "hot_issue_id" in cases.columns else [None] * len(cases)
    return [
        ReplayedBurst(dict(zip(BURST_COLUMNS, map(float, row), strict=True)), h if isinstance(h, str) else None)
        for row, h in zip(values, hot, strict=True)
    ]


def __getattr__(name: str) -> Any:
    # Models logged before `models.pyfunc_model` existed import their pyfunc class from here; it lives there
    # so that loading a bundle from a path (`triage predict`, serving) never imports MLflow (~1 s).
    if name == "TriagePyfunc":
        from models.pyfunc_model import TriagePyfunc

        return TriagePyfunc
    raise AttributeError(name)


@dataclass(frozen=True)
class LoadedModel:
    bundle: TriageBundle
    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None


def _parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """models:/name@alias or models:/name/version → (name, alias, version)."""
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    name, _, version = rest.partition("/")
    return name, None, version or None


def needs_mlflow(uri: str) -> bool:
    """Whether loading ``uri`` goes through MLflow (registry, run, or an MLflow model folder), so the tracking
    store must be configured first; a bundle file or folder loads without importing MLflow at all."""
    return uri.startswith(("models:/", "runs:/")) or (Path(uri) / "MLmodel").exists()


def load_model(uri: str) -> LoadedModel:
    """Load a bundle from `models:/name@alias`, `models:/name/version`, `runs:/…` or a local path.

    A local path may be a directory holding `bundle.pkl.zst` (or an older `bundle.pkl.gz` or `bundle.joblib`),
    the file itself, or an MLflow model directory (with an `MLmodel` file).
    """
    if needs_mlflow(uri):
        import mlflow  # only here: a bundle on disk loads without it
    if uri.startswith("models:/"):
        name, alias, version = _parse_registry_uri(uri)
        client = mlflow.MlflowClient()
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
        bundle = pyfunc.unwrap_python_model().bundle
        logger.info("loaded model %s version %s (alias %s)", name, mv.version, alias)
        return LoadedModel(bundle, uri, name=name, version=str(mv.version), alias=alias, run_id=mv.run_id)
    if uri.startswith("runs:/"):
        bundle = mlflow.pyfunc.load_model(uri).unwrap_python_model().bundle
        return LoadedModel(bundle, uri, run_id=uri.removeprefix("runs:/").split("/")[0])
    path = Path(uri)
    if (path / "MLmodel").exists():
        bundle = mlflow.pyfunc.load_model(str(path)).unwrap_python_model().bundle
    elif path.is_dir() and bundle_file(path) is None:
        raise FileNotFoundError(f"{path} holds neither {BUNDLE_FILE} nor an MLflow model (MLmodel)")
    else:
        bundle = TriageBundle.load(path)
    name = bundle.metadata.get("model_name")
    version = bundle.metadata.get("model_version") or _local_version(bundle)
    return LoadedModel(bundle, uri, name=name, version=str(version) if version else None)


def _local_version(bundle: TriageBundle) -> str | None:
    """A stable name for an unregistered bundle, so its stored predictions still say which model made them."""
    digest, trained_at = bundle.metadata.get("data_digest"), bundle.metadata.get("trained_at")
    if not digest and not trained_at:
        return None
    return f"local-{digest or 'nodigest'}-{(trained_at or '')[:19].replace(':', '')}"
