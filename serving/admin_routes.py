"""Admin routes: reload the served model (e.g. after `triage promote` moved the champion alias)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from serving.auth import Role, require_role
from serving.model_reload import ReloadError, reload_model
from serving.routes import AUTH_ERRORS
from serving.schemas import ErrorResponse, ModelRef
from serving.state import ModelStateDep, SettingsDep
from serving.store.tables import utcnow

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
        description="models:/name@alias, models:/name/version, runs:/… or a path on the server. A local path "
        "is unpickled: admins only, and only paths you trust.",
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
    status.HTTP_409_CONFLICT: {
        "model": ErrorResponse,
        "description": "The model could not be loaded or warmed up; the previous model is still serving.",
    },
    **AUTH_ERRORS,
}


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
    request: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    """Load TRIAGE_MODEL_URI (or `model_uri`), warm it up, then swap it in.

    Requests in flight finish on the model they started with; a model that fails to load is refused
    with 409 and the reason, and the previous model keeps serving. Concurrent reloads run one at a time.
    """
    uri = (request.model_uri if request else None) or settings.model_uri
    try:
        done = reload_model(state, uri)
    except ReloadError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return ReloadResponse(
        previous=done.previous,
        current=done.current,
        model_uri=done.uri,
        alias=done.alias,
        load_seconds=round(done.load_seconds, 3),
        reloaded_at=utcnow(),
    )
