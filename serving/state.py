"""What the lifespan loaded, and the dependencies routes use to reach it.

The app's lifespan puts one `ModelState` on `app.state.model_state`; routes ask for the model through
`get_model` (`Annotated[LoadedModel, Depends(get_model)]`), so tests can override it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from models.mlflow_model import LoadedModel
from serving.schemas import ModelRef
from serving.settings import Settings

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


async def get_model_state(request: Request) -> ModelState:
    state = getattr(request.app.state, "model_state", None)
    return state if state is not None else ModelState()


async def get_model(state: Annotated[ModelState, Depends(get_model_state)]) -> LoadedModel:
    """The loaded model; 503 with the reason when there is none."""
    if state.model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=state.unavailable_reason)
    return state.model


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


ModelStateDep = Annotated[ModelState, Depends(get_model_state)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
