"""The pyfunc face of a `TriageBundle`, which MLflow loads through `models/pyfunc_entry.py`.

Apart from `models.mlflow_model` so that code loading a bundle from a path never imports MLflow.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from models.bundle import TriageBundle
from models.mlflow_model import routes_frame


class TriagePyfunc(PythonModel):
    """Pyfunc face of a `TriageBundle`; input columns title and body (strings)."""

    def load_context(self, context: PythonModelContext) -> None:
        self.bundle = TriageBundle.load(context.artifacts["bundle"])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return routes_frame(self.bundle, model_input)
