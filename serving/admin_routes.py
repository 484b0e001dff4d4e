"""Admin routes: reload the served model (e.g. after `triage promote` moved the champion alias)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from serving.auth import Role
from serving.dependencies import MetricsDep, ModelStateDep, SettingsDep, require_role
from serving.model_reload import ReloadError, reload_model
from serving.routes import AUTH_ERRORS
from serving.schemas import ErrorResponse, ModelRef, ValidationErrorResponse
from store.tables import utcnow

logger = logging.getLogger(__name__)

MAX_URI_CHARS = 2048

admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ReloadRequest(BaseModel):
    """Optional: which model to load instead of the configured TRIAGE_MODEL_URI."""

    model_config = ConfigDict(extra="forbid")

    model_uri: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_URI_CHARS,
        description="models:/name@alias or models:/name/version; a path on the server only inside "
        "TRIAGE_RELOAD_MODEL_DIR (a model is unpickled, which runs code: nothing else is loaded).",
        examples=["models:/grievance-triage@champion"],
    )


class ReloadResponse(BaseModel):
    previous: ModelRef | None = Field(description="The model that served before (None if none was loaded).")
    current: ModelRef = Field(description="The model serving now.")
    model_uri: str = Field(description="Where the new model was loaded from.")
    alias: str | None = Field(description="The registry alias it was loaded by, if any.")
    load_seconds: float = Field(description="Time to load and warm up the new model.")
    reloaded_at: datetime


RELOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "model": ValidationErrorResponse,
        "description": "model_uri is neither a registry URI nor a path inside TRIAGE_RELOAD_MODEL_DIR.",
    },
    status.HTTP_409_CONFLICT: {
        "model": ErrorResponse,
        "description": "The model could not be loaded or warmed up; the previous model is still serving.",
    },
    **AUTH_ERRORS,
}


def _refuse_uri(uri: str, model_dir: Path | None) -> str | None:
    """Why a requested model location may not be loaded, or None. Checked before anything is read."""
    if uri.startswith("models:/"):
        return None
    if "://" in uri or uri.startswith(("runs:/", "models:", "file:")):
        return "model_uri must be a registry URI (models:/name@alias or models:/name/version)"
    if model_dir is None:
        return "model_uri must be a registry URI (models:/…): loading by path is off (TRIAGE_RELOAD_MODEL_DIR)"
    allowed = model_dir.resolve()
    if not Path(uri).is_absolute() or not Path(uri).resolve().is_relative_to(allowed):
        return f"model_uri: a path must lie inside {allowed} (TRIAGE_RELOAD_MODEL_DIR)"
    return None


@admin_router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Load the model again (the new champion) without dropping requests",
    responses=RELOAD_ERRORS,
    dependencies=[Depends(require_role(Role.admin))],
)
def reload(
    state: ModelStateDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    """Load TRIAGE_MODEL_URI (or `model_uri`), warm it up, then swap it in.

    Requests in flight finish on the model they started with; a model that fails to load is refused
    with 409 and the reason, and the previous model keeps serving. Concurrent reloads run one at a time.
    """
    if request is not None and request.model_uri:
        refusal = _refuse_uri(request.model_uri, settings.reload_model_dir)
        if refusal:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body", "model_uri"), "msg": refusal, "input": None}]
            )
    uri = (request.model_uri if request else None) or settings.model_uri
    try:
        done = reload_model(state, uri)
    except ReloadError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    if metrics is not None:  # this worker's model info at once; the others' at their next refresh
        metrics.model(done.current.name, done.current.version)
    return ReloadResponse(
        previous=done.previous,
        current=done.current,
        model_uri=done.uri,
        alias=done.alias,
        load_seconds=round(done.load_seconds, 3),
        reloaded_at=utcnow(),
    )
