"""A private MLflow store for a test: tracking, registry and artefacts in one folder, the folder as cwd.

mlflow keeps the tracking and registry URIs in process globals once used, so leaving the store also
resets them; otherwise the next test would write into a folder pytest has removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest


def point_mlflow_at(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    mp.setenv("TRIAGE_MLFLOW_ARTIFACTS", str(home / "art"))
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mp.delenv("MLFLOW_REGISTRY_URI", raising=False)  # restored (unset) after: mlflow sets it globally
    mp.chdir(home)


def reset_mlflow_uris() -> None:
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@contextmanager
def isolated_mlflow(home: Path) -> Iterator[Path]:
    """Use the store in `home` until the block ends (environment, cwd and mlflow's globals restored)."""
    with pytest.MonkeyPatch.context() as mp:
        point_mlflow_at(mp, home)
        try:
            yield home
        finally:
            reset_mlflow_uris()
