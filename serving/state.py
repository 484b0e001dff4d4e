"""The served model's state, and how a loaded model describes itself.

`serving.services.open_services` makes one `ModelState` per app; routes get it, or the model in it,
through `serving.dependencies` (`ModelStateDep`, `ModelDep`). `describe_model` is the one description of
a model that `GET /v1/model` answers and the dashboard shows.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from models.mlflow_model import LoadedModel
from serving.schemas import ModelInfo, ModelRef

HOW_TO_FIX = "train one with `triage train` or set TRIAGE_MODEL_URI"


@dataclass
class ModelState:
    """The loaded model, or why there is none.

    `model` is replaced, never mutated, by `serving.model_reload.reload_model`, one reload at a time
    (`reload_lock`); a request keeps the model object it read when it started.
    """

    model: LoadedModel | None = None
    error: str | None = None
    reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def unavailable_reason(self) -> str:
        return f"no model loaded: {self.error or 'the service is still starting'}; {HOW_TO_FIX}"


def model_ref(model: LoadedModel) -> ModelRef:
    """Name and version of a loaded model, from the registry or else the bundle's own metadata."""
    meta = model.bundle.metadata
    version = model.version or meta.get("model_version")
    return ModelRef(name=model.name or meta.get("model_name"), version=str(version) if version else None)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def describe_model(model: LoadedModel) -> ModelInfo:
    """Name, version and alias of a loaded model, when it was trained and its held-out metrics."""
    bundle = model.bundle
    meta = bundle.metadata
    ref = model_ref(model)
    return ModelInfo(
        name=ref.name,
        version=ref.version,
        alias=model.alias,
        uri=model.uri,
        run_id=model.run_id,
        trained_at=str(meta["trained_at"]) if meta.get("trained_at") else None,
        classes=bundle.classes,
        target_precision=_finite(bundle.target_precision),
        metrics={str(k): _finite(v) for k, v in (meta.get("metrics") or {}).items()},
        text_pipeline_version=str(meta["text_pipeline_version"])
        if meta.get("text_pipeline_version")
        else None,
    )
