"""The FastAPI application: factory, lifespan (load once), error shapes, and `run` for the CLI.

`app = create_app()` at the bottom only builds the routes; the model and jieba are loaded by the
lifespan when the server starts, so importing this module reads no model and opens no store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.admin_routes import admin_router
from serving.auth import KeyRing
from serving.background import start_jobs, stop_jobs
from serving.dependencies import AppContext, context_of
from serving.metrics import RequestMetricsMiddleware, fresh_multiproc_dir, multiproc_dir, remove_multiproc_dir
from serving.metrics_routes import metrics_router
from serving.report_routes import report_router
from serving.request_guard import AuthFailures, RequestGuardMiddleware
from serving.review_routes import review_router
from serving.routes import router
from serving.services import open_services
from serving.settings import Settings, get_settings
from serving.spool import SpoolUnavailableError
from serving.summary_routes import summary_router
from serving.warning_routes import outbox_router, warning_router
from serving.web import install as install_web_pages

logger = logging.getLogger(__name__)

PACKAGE = "grievance-triage"

DESCRIPTION = """
Routes Chinese citizen grievances (12345 hotline, web petitions, mayor's mailbox) to the department
that should handle them, with a calibrated confidence and a flag for cases a person should review; gives
each case a red / yellow / green risk level with its reasons; notices bursts of similar cases from many
people (hot issues); and keeps every prediction in an append-only audit trail.

* `POST /v1/triage`: one case → department, confidence, top 3, needs_review, model version.
* `POST /v1/triage/batch`: up to 1,000 cases in one call, results in request order.
* `GET /v1/alerts`, `GET /v1/alerts/{id}`: hot-issue alerts (bursts of similar cases from many people).
* `GET /v1/review-queue`, `GET /v1/cases/{case_id}`, `POST /v1/cases/{case_id}/reviews`: reviewers audit
  predictions; every review is kept. `GET /v1/reports/agreement`: model vs reviewers (admin).
* `GET /v1/warnings`, `GET /v1/warnings/{id}`, `POST /v1/warnings/{id}/acknowledge|resolve|withdraw`: warnings
  (预警单) for red and yellow cases and hot-issue alerts, with deadlines, supervision notices and webhook push.
* `GET /v1/reports/drift`: served traffic against the model's training profile, by week, with reviewed
  results (admin). `GET /metrics`: Prometheus metrics (admin, or open on TRIAGE_METRICS_PORT).
* `GET /v1/model`: the loaded model: name, version, alias, when it was trained, held-out metrics.
* `POST /v1/admin/reload`: load the new champion without dropping requests in flight (admin).
* `GET /healthz` (process alive) and `GET /readyz` (a model is loaded).

Every route but health, readiness and these docs needs an API key in `X-API-Key` (`TRIAGE_API_KEYS`):
role `intake` may triage, `reviewer` may read and review cases and alerts, `department` may read and act on its
own department's warnings, `admin` may do everything.
No key answers 401, a key whose role may not answers 403. The reviewer web page is at `/review`.

Invalid requests answer 422 with `error` and a `detail` list naming each field and the reason;
triage answers 503 when no model is loaded.
"""


def _app_version() -> str:
    try:
        return package_version(PACKAGE)
    except PackageNotFoundError:
        return "0.0.0+unknown"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the services (`serving.services.open_services`, as the demo seeder does) for the app's life."""
    context = context_of(app)
    configure_logging(context.settings.log_level)
    context.services = open_services(context.settings)
    jobs = start_jobs(context.services)  # the overdue sweep and webhook delivery (serving.background)
    try:
        yield
    finally:
        await stop_jobs(jobs)
        context.close_services()


async def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 instead of a bare 500 when a read needs the database and cannot reach it.

    Triage rides out an outage through the spool; reads (case views, the queue, alerts, reports) cannot.
    The error names the operation only: a database error's message can hold statement parameters.
    """
    logger.error("database unavailable for %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": "the audit store's database cannot be reached; try again shortly"},
        headers={"Retry-After": "5"},
    )


async def spool_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 with the reason when neither the database nor the spool could keep a prediction."""
    assert isinstance(exc, SpoolUnavailableError)
    return JSONResponse(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, content={"detail": exc.detail})


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's standard `detail` list (loc, msg, type, ctx) plus a top-level `error`.

    The offending `input` is left out: it would echo case text (up to 20,000 characters) back.
    """
    assert isinstance(exc, RequestValidationError)
    detail = [{k: v for k, v in err.items() if k not in ("input", "url")} for err in exc.errors()]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"error": "invalid request", "detail": jsonable_encoder(detail)},
    )


#: FastAPI's 400 for a body it could not parse at all (bytes that are not UTF-8 before JSON decoding).
BODY_PARSE_ERROR = "There was an error parsing the body"


async def body_parse_error_handler(request: Request, exc: Exception) -> Response:
    """A body that is not UTF-8 is malformed JSON like any other: 422 `json_invalid` in our shape, not FastAPI's
    undocumented 400 (found by schemathesis); every other HTTP error keeps FastAPI's own answer."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == BODY_PARSE_ERROR:
        issue = {"type": "json_invalid", "loc": ["body"], "msg": "the body is not JSON text in UTF-8"}
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"error": "invalid request", "detail": [issue]}
        )
    return await http_exception_handler(request, exc)


#: On every answer that did not set its own (the pages set stricter ones): browsers must not guess a JSON
#: answer's type, nor keep answers that hold case text in a cache.
API_HEADERS = {"X-Content-Type-Options": "nosniff"}
API_NO_STORE_PREFIX = "/v1/"


class ApiHeadersMiddleware:
    """`nosniff` on every response and `Cache-Control: no-store` on `/v1/` answers, unless already set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope.get("path", "").startswith(API_NO_STORE_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in API_HEADERS.items():
                    headers.setdefault(name, value)
                if no_store:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The project's loggers, at TRIAGE_LOG_LEVEL; libraries stay at WARNING.
OWN_LOGGERS = ("serving", "models", "features", "training")


def configure_logging(level: str) -> None:
    """Timestamped log lines from the project's loggers at `level`, however the app was started.

    Under a bare `uvicorn serving.app:create_app` (the systemd unit) nothing configures the root logger:
    uvicorn sets up its own loggers only, and Python's last-resort handler then printed warnings without a
    time and dropped every INFO line of serving.* (0 of 1,437). A root logger that already has a handler
    (`triage serve`, pytest) is left as it is.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model named by `settings.model_uri` is loaded when the app starts."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Grievance triage API",
        version=_app_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    context = AppContext(
        settings=settings,
        keyring=KeyRing.from_spec(settings.api_keys.get_secret_value() if settings.api_keys else None),
        auth_failures=AuthFailures(),
    )
    app.state.context = context  # the only thing on app.state; routes get its parts as dependencies
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(OperationalError, database_unavailable_handler)
    app.add_exception_handler(SpoolUnavailableError, spool_unavailable_handler)
    app.add_exception_handler(HTTPException, body_parse_error_handler)
    app.add_middleware(
        RequestGuardMiddleware, keyring=lambda: context.keyring, failures=context.auth_failures,
        max_bytes=settings.body_limit_bytes,
    )
    app.include_router(router)
    install_web_pages(app, settings)  # the reviewer pages: /review, /dashboard
    app.include_router(review_router)
    app.include_router(admin_router)
    app.include_router(warning_router)
    app.include_router(outbox_router)
    app.include_router(metrics_router)
    app.include_router(report_router)
    app.include_router(summary_router)
    app.add_middleware(ApiHeadersMiddleware)  # outside the guard, so a 413 or 429 carries the headers too
    if settings.cors_origins:  # off by default: no Access-Control-* header, browsers keep other origins out
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"], allow_credentials=False, max_age=600,
        )
    if settings.metrics_enabled:  # outermost: every answer is counted, a 401, 413 or 429 too
        app.add_middleware(RequestMetricsMiddleware)
    return app


#: How long an idle client connection stays open (the systemd unit passes the same). The ticket system
#: keeps a pool of connections; uvicorn's 5 s default closes them between bursts, and under load runs with
#: it lost a few requests to connections closed mid-request (ReadError on the client; none at 75 s,
#: experiments/bench_load.py).
KEEP_ALIVE_SECONDS = 75


def run(
    host: str = "127.0.0.1", port: int = 8000, model_uri: str | None = None, log_level: str | None = None,
    workers: int = 1,
) -> None:
    """Serve the API with uvicorn (used by `triage serve`); each worker loads the model at start-up.

    Metrics of all workers are summed through a fresh PROMETHEUS_MULTIPROC_DIR made for this start and
    removed when it ends (an inherited one is kept: whoever set it manages it)."""
    import uvicorn

    if model_uri:
        os.environ["TRIAGE_MODEL_URI"] = model_uri
    if log_level:
        os.environ["TRIAGE_LOG_LEVEL"] = log_level
    get_settings.cache_clear()
    settings = get_settings()
    if workers > 1 and settings.hotspot_sharing == "auto":
        # "auto" picks local mode on SQLite, which one process owns: several workers must share the feed.
        os.environ["TRIAGE_HOTSPOT_SHARING"] = "feed"
    configure_logging(settings.log_level)
    made = fresh_multiproc_dir() if settings.metrics_enabled and multiproc_dir() is None else None
    try:
        uvicorn.run(
            "serving.app:create_app", factory=True, host=host, port=port, workers=workers,
            log_level=settings.log_level.lower(), timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    finally:
        if made is not None:
            remove_multiproc_dir(made)


app = create_app()
