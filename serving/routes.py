"""Thin routes: validate (schemas), call the bundle once, shape the answer.

Routes are plain `def`: routing is CPU-bound and FastAPI runs it in its threadpool. Logs carry the
case id, department, model version and latency only; never the title, body or reporter.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError

from serving.auth import Role
from serving.dependencies import (
    HotspotsDep,
    MetricsDep,
    ModelDep,
    SettingsDep,
    StoreDep,
    WriterDep,
    current_principal,
    require_role,
)
from serving.schemas import (
    EXAMPLE_CASE,
    AlertDetail,
    AlertList,
    AlertMember,
    AlertSummary,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    Health,
    ModelInfo,
    NulFree,
    Ready,
    TrajectoryPoint,
    TriageRequest,
    TriageResponse,
)
from serving.settings import MAX_BATCH, Settings
from serving.state import describe_model, model_ref
from serving.triage_service import triage_cases
from store import AlertRecord

logger = logging.getLogger(__name__)

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"model": ErrorResponse, "description": "No valid API key in X-API-Key."},
    status.HTTP_403_FORBIDDEN: {"model": ErrorResponse, "description": "The key's role may not do this."},
}
NO_MODEL = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ErrorResponse, "description": "No model is loaded."},
    **AUTH_ERRORS,
}
INTAKE = [Depends(require_role(Role.intake))]
REVIEWER = [Depends(require_role(Role.reviewer))]
ANY_ROLE = [Depends(current_principal)]

router = APIRouter()


RescoreQuery = Annotated[
    bool,
    Query(description="Score again even if this case_id was already triaged with the same text."),
]


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
    dependencies=INTAKE,
)
def triage(
    case: Annotated[TriageRequest, Body(openapi_examples=TRIAGE_EXAMPLES)],
    model: ModelDep,
    settings: SettingsDep,
    writer: WriterDep,
    hotspots: HotspotsDep,
    metrics: MetricsDep,
    rescore: RescoreQuery = False,
) -> Response:
    """The most probable department with its calibrated confidence and the top three, whether a person
    should review the routing, the risk level with its reasons, and the hot issue the case joined.
    Every prediction is stored in the audit trail; the same case_id with the same text returns the
    stored prediction unless `rescore=true`."""
    _enforce_limits([case], settings, batch=False)
    (result,) = triage_cases(model, [case], writer=writer, hotspots=hotspots, rescore=rescore, metrics=metrics)
    # Built from validated parts: serialise it here rather than have FastAPI validate it a second time
    # (in another worker-thread hop). `response_model` still documents the shape.
    answer = TriageResponse.model_construct(**dict(result), model=model_ref(model))
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post(
    "/v1/triage/batch",
    response_model=BatchResponse,
    tags=["triage"],
    summary=f"Route up to {MAX_BATCH} cases in one call",
    responses=NO_MODEL,
    dependencies=INTAKE,
)
def triage_batch(
    batch: BatchRequest,
    model: ModelDep,
    settings: SettingsDep,
    writer: WriterDep,
    hotspots: HotspotsDep,
    metrics: MetricsDep,
    rescore: RescoreQuery = False,
) -> BatchResponse:
    """One result per case, in request order; case ids must be unique within the batch."""
    _enforce_limits(batch.cases, settings, batch=True)
    started = time.perf_counter()
    results = triage_cases(model, batch.cases, writer=writer, hotspots=hotspots, rescore=rescore,
                           metrics=metrics)
    logger.info(
        "triage batch n=%d review=%d latency_ms=%.1f",
        len(results), sum(r.department.needs_review for r in results), 1000 * (time.perf_counter() - started),
    )
    return BatchResponse(results=results, model=model_ref(model))


def _alert_summary(record: AlertRecord) -> AlertSummary:
    p = record.payload or {}
    return AlertSummary(
        id=record.alert_id,
        burst_id=record.burst_id,
        level=record.level,
        raised_at=record.raised_at,
        reason=p.get("reason"),
        place=p.get("place"),
        keywords=list(p.get("keywords") or []),
        cases=int(p.get("cases") or 0),
        reporters=int(p.get("reporters") or 0),
        first_case_id=p.get("first_case_id"),
        last_case_id=p.get("last_case_id"),
    )


@router.get(
    "/v1/alerts",
    response_model=AlertList,
    tags=["hot issues"],
    summary="Open hot-issue alerts",
    responses=AUTH_ERRORS,
    dependencies=REVIEWER,
)
def list_alerts(
    store: StoreDep,
    level: Annotated[Literal["red", "yellow"] | None, Query(description="Only bursts at this level.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    """Each burst's latest alert (a burst that escalated shows once, as red), newest first."""
    return AlertList(alerts=[_alert_summary(a) for a in store.open_alerts(level=level, limit=limit)])


@router.get(
    "/v1/alerts/{alert_id}",
    response_model=AlertDetail,
    tags=["hot issues"],
    summary="One alert (or a hot issue's latest) with its members and trajectory",
    responses={status.HTTP_404_NOT_FOUND: {"model": ErrorResponse, "description": "No such alert."}, **AUTH_ERRORS},
    dependencies=REVIEWER,
)
def get_alert(alert_id: Annotated[str, NulFree], store: StoreDep) -> AlertDetail:
    """Members (every case recorded in the burst so far), keywords, place, and cases per day.

    `alert_id` is an alert's id, or a burst's (a triage answer's `hot_issue.id`): then its latest alert."""
    record = store.alert(alert_id)
    if record is None:
        history = store.alerts_for_burst(alert_id)
        if not history:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                detail=f"no alert with id {alert_id!r}, and no hot issue of that id has raised one (a hot issue "
                "with level null has not yet)",
            )
        record = history[-1]
    members = store.members_of(record.burst_id)
    per_day = Counter(m.observed_at.date().isoformat() for m in members)
    trajectory, total = [], 0
    for day in sorted(per_day):
        total += per_day[day]
        trajectory.append(TrajectoryPoint(date=day, cases=per_day[day], cumulative=total))
    return AlertDetail(
        **_alert_summary(record).model_dump(),
        member_case_ids=list((record.payload or {}).get("member_case_ids") or []),
        members=[AlertMember(case_id=m.case_id, observed_at=m.observed_at) for m in members],
        trajectory=trajectory,
        history=[_alert_summary(a) for a in store.alerts_for_burst(record.burst_id)],
    )


@router.get(
    "/v1/model",
    response_model=ModelInfo,
    tags=["model"],
    summary="The loaded model",
    responses=NO_MODEL,
    dependencies=ANY_ROLE,
)
def model_info(model: ModelDep) -> ModelInfo:
    """Name, version and alias of the loaded model, when it was trained and its held-out metrics."""
    return describe_model(model)


@router.get("/healthz", response_model=Health, tags=["operations"], summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    tags=["operations"],
    summary="A model is loaded and the service can triage",
    responses=NO_MODEL,
    response_model_exclude_unset=True,
)
def readyz(model: ModelDep, writer: WriterDep) -> Ready:
    """Ready while a model is loaded and writes can be kept: with the database down the service stays
    ready (it spools, see `store`), since taking every replica out of rotation would turn a storage
    outage into a full one; 503 when there is no model, or neither database nor spool can be written."""
    # `model` is asked for first: without one (starting, shutting down) the 503 gives the model's reason.
    accepting, store = writer.status()
    if not accepting:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"audit store {store}")
    if store == "ok":  # the healthy answer stays as it was; `store` appears only when there is news
        return Ready(status="ready", model=model_ref(model))
    return Ready(status="ready", model=model_ref(model), store=store)
