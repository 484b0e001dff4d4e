"""`triage predict`: score a file of cases in batch with a registered or local model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from models.bundle import TriageBundle
from models.mlflow_model import routes_frame
from training.loading import DataError, LoadReport, load_cases

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".parquet")
CHUNK = 1000


def score_frame(
    bundle: TriageBundle, cases: pd.DataFrame, on_chunk: Callable[[int], None] | None = None
) -> pd.DataFrame:
    """One row per case: case_id, then the route columns (department, confidence, review flag, top-3)."""
    parts = []
    for start in range(0, len(cases), CHUNK):
        chunk = cases.iloc[start : start + CHUNK]
        routed = routes_frame(bundle, chunk[["title", "body"]].reset_index(drop=True))
        routed.insert(0, "case_id", chunk["case_id"].to_numpy())
        parts.append(routed)
        if on_chunk:
            on_chunk(len(chunk))
    if not parts:
        return routes_frame(bundle, cases.iloc[:0][["title", "body"]]).assign(case_id=[])
    return pd.concat(parts, ignore_index=True)


def write_predictions(frame: pd.DataFrame, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".parquet":
        frame.to_parquet(output, index=False)
    else:
        frame.to_csv(output, index=False, encoding="utf-8")


def check_output_path(output: Path) -> None:
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(output, f"unsupported output type '{output.suffix}'; use one of {', '.join(OUTPUT_SUFFIXES)}")


def predict_file(
    bundle: TriageBundle, input_path: Path, output: Path, *, encoding: str = "utf-8",
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[int, LoadReport]:
    check_output_path(output)
    loaded = load_cases([input_path], training=False, encoding=encoding)
    scored = score_frame(bundle, loaded.frame, on_chunk)
    write_predictions(scored, output)
    logger.info("scored %d cases from %s", len(scored), input_path.name)
    return len(scored), loaded.report
