"""Thin routes: validate (schemas), call the bundle once, shape the answer.

Routes are plain `def`: routing is CPU-bound and FastAPI runs it in its threadpool. Logs carry the
case id, department, model version and latency only; never the title, body or reporter.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from fastapi.exceptions import RequestValidationError

from models.bundle import Route
from serving.schemas import (
    EXAMPLE_CASE,
    BatchRequest,
    BatchResponse,
    CaseTriage,
    Department,
    DepartmentScore,
    ErrorResponse,
    Health,
    ModelInfo,
    Ready,
    TriageRequest,
    TriageResponse,
)
from serving.settings import MAX_BATCH, Settings
from serving.state import ModelDep, ModelStateDep, SettingsDep, model_ref

logger = logging.getLogger(__name__)

NO_MODEL = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ErrorResponse, "description": "No model is loaded."}
}

router = APIRouter()


def _department(route: Route) -> Department:
    return Department(
        label=route.label,
        confidence=route.confidence,
        top=[DepartmentScore(label=label, probability=p) for label, p in route.top],
        needs_review=route.needs_review,
    )


def _too_long(loc: tuple[str | int, ...], limit: int, unit: str) -> dict[str, Any]:
    kind = "string_too_long" if unit == "characters" else "too_long"
    noun = "String" if unit == "characters" else "List"
    return {
        "type": kind,
        "loc": loc,
        "msg": f"{noun} should have at most {limit} {unit}",
        "input": None,
        "ctx": {"max_length": limit},
    }


def _enforce_limits(cases: list[TriageRequest], settings: Settings, *, batch: bool) -> None:
    """Apply limits the deployment set below the schema's ceilings, with the same 422 shape."""
    errors: list[dict[str, Any]] = []
    if batch and len(cases) > settings.max_batch:
        errors.append(_too_long(("body", "cases"), settings.max_batch, "items"))
    for i, case in enumerate(cases):
        where: tuple[str | int, ...] = ("body", "cases", i) if batch else ("body",)
        for field in ("title", "body"):
            if len(getattr(case, field)) > settings.max_text_chars:
                errors.append(_too_long((*where, field), settings.max_text_chars, "characters"))
    if errors:
        raise RequestValidationError(errors)


TRIAGE_EXAMPLES = {
    "wages": {
        "summary": "Unpaid wages",
        "value": EXAMPLE_CASE,
    },
    "title_only": {
        "summary": "Title only (empty body)",
        "value": {"case_id": "YC202607150002", "title": "南湖区翠湖湾小区垃圾站臭气熏天，夏天蚊蝇成群"},
    },
}


@router.post(
    "/v1/triage",
    response_model=TriageResponse,
    tags=["triage"],
    summary="Route one case to a department",
    responses=NO_MODEL,
)
def triage(
    case: Annotated[TriageRequest, Body(openapi_examples=TRIAGE_EXAMPLES)],
    model: ModelDep,
    settings: SettingsDep,
) -> TriageResponse:
    """The most probable department, its calibrated confidence, the top three, and whether a person
    should review the routing before it is dispatched."""
    _enforce_limits([case], settings, batch=False)
    started = time.perf_counter()
    route = model.bundle.route_one(case.title, case.body)
    ref = model_ref(model)
    logger.info(
        "triage case_id=%s department=%s needs_review=%s model_version=%s latency_ms=%.1f",
        case.case_id,
        route.label,
        route.needs_review,
        ref.version,
        1000 * (time.perf_counter() - started),
    )
    return TriageResponse(case_id=case.case_id, department=_department(route), model=ref)


@router.post(
    "/v1/triage/batch",
    response_model=BatchResponse,
    tags=["triage"],
    summary=f"Route up to {MAX_BATCH} cases in one call",
    responses=NO_MODEL,
)
def triage_batch(batch: BatchRequest, model: ModelDep, settings: SettingsDep) -> BatchResponse:
    """One result per case, in request order; case ids must be unique within the batch."""
    _enforce_limits(batch.cases, settings, batch=True)
    started = time.perf_counter()
    routes = model.bundle.route([(c.title, c.body) for c in batch.cases])
    ref = model_ref(model)
    results = [
        CaseTriage(case_id=c.case_id, department=_department(r))
        for c, r in zip(batch.cases, routes, strict=True)
    ]
    for c, r in zip(batch.cases, routes, strict=True):
        logger.debug("triage case_id=%s department=%s needs_review=%s", c.case_id, r.label, r.needs_review)
    logger.info(
        "triage batch n=%d review=%d model_version=%s latency_ms=%.1f",
        len(results),
        sum(r.needs_review for r in routes),
        ref.version,
        1000 * (time.perf_counter() - started),
    )
    return BatchResponse(results=results, model=ref)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@router.get(
    "/v1/model", response_model=ModelInfo, tags=["model"], summary="The loaded model", responses=NO_MODEL
)
def model_info(model: ModelDep) -> ModelInfo:
    """Name, version and alias of the loaded model, when it was trained and its held-out metrics."""
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


@router.get("/healthz", response_model=Health, tags=["operations"], summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    tags=["operations"],
    summary="A model is loaded and the service can triage",
    responses=NO_MODEL,
)
def readyz(state: ModelStateDep) -> Ready:
    if state.model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=state.unavailable_reason)
    return Ready(status="ready", model=model_ref(state.model))
