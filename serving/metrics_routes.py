"""GET /metrics: the Prometheus exposition, for an admin key (or open on TRIAGE_METRICS_PORT)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status

from serving.auth import Role
from serving.dependencies import SettingsDep, require_role
from serving.metrics import exposition
from serving.routes import AUTH_ERRORS

metrics_router = APIRouter(tags=["operations"])


@metrics_router.get(
    "/metrics",
    summary="Operational metrics (Prometheus text format)",
    responses={
        status.HTTP_200_OK: {"content": {"text/plain": {}}, "description": "Prometheus text exposition 0.0.4."},
        status.HTTP_404_NOT_FOUND: {"description": "Metrics are off (TRIAGE_METRICS_ENABLED=false)."},
        **AUTH_ERRORS,
    },
    dependencies=[Depends(require_role(Role.admin))],
)
def metrics(settings: SettingsDep) -> Response:
    """Requests and latency per route template and status, cases by department and risk level, routing
    reviews, hot-issue alerts by level, spool depth, database state and the loaded model: summed over
    every worker of this service."""
    if not settings.metrics_enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="metrics are off on this server (TRIAGE_METRICS_ENABLED)")
    body, content_type = exposition()
    return Response(body, media_type=content_type)
