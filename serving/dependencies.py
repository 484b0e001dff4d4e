"""What routes and pages ask FastAPI for, and where it comes from: the app's one `AppContext`.

`create_app` puts an `AppContext` on `app.state.context`: the settings, the key ring and the auth-failure
limiter (and, from `serving.web.install`, the session secret), fixed for the app's life. The lifespan
fills its `services` (`serving.services.open_services`: model, store, writer, hot-issue detector) and
empties it at shutdown. Routes take what they need as parameters (`store: StoreDep`, `model: ModelDep`),
never from `app.state`, so each one says what it uses and a test can replace any of them
(`app.dependency_overrides[get_store] = lambda: other_store`). While the services are not open, each of
their getters answers 503 saying which one and why, instead of a 500 from a missing attribute.

The caller's identity is a dependency too: `current_principal` (the `X-API-Key` header or the reviewer
page's session) and `require_role`, which answers 401 or 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from starlette.applications import Starlette

from models.mlflow_model import LoadedModel
from serving.auth import API_KEY_HEADER, KeyRing, Principal, Role
from serving.hotspot_service import HotspotService
from serving.metrics import ServiceMetrics
from serving.request_guard import AuthFailures
from serving.services import Services
from serving.settings import Settings
from serving.spool import DurableWriter
from serving.state import ModelState
from serving.warning_desk import WarningDesk
from serving.webhooks import Deliverer
from store.repository import Store

NOT_OPEN = "the service is starting, shutting down, or could not reach its database"
NO_STORE = f"the audit store is not open: {NOT_OPEN}"
NO_WRITER = f"the audit store's writer (and its spool) is not open: {NOT_OPEN}"
NO_HOTSPOTS = f"the hot-issue detector is not running: {NOT_OPEN}"
NO_WARNINGS = f"the warning desk is not open: {NOT_OPEN}"
NO_PAGES = "the reviewer pages are not set up on this app (serving.web.install)"
SHUTTING_DOWN = "the service is shutting down"


@dataclass(eq=False)
class AppContext:
    """Everything an app's routes may be given; the one object on `app.state` (`context_of`)."""

    settings: Settings
    keyring: KeyRing
    auth_failures: AuthFailures
    #: Signs the reviewer pages' session cookie; set by `serving.web.install`.
    session_secret: str | None = None
    #: Open between the lifespan's start and its end; None before and after.
    services: Services | None = None
    #: The lifespan has ended: the model's 503 says "shutting down", not "starting".
    stopped: bool = False

    def close_services(self) -> None:
        """Take the services away from new requests first, then close them."""
        services, self.services = self.services, None
        self.stopped = True
        if services is not None:
            services.close()


def context_of(app: Starlette) -> AppContext:
    """The app's context (for the lifespan, plain Starlette routes and tests; routes use the deps below)."""
    context: AppContext = app.state.context
    return context


def services_of(app: Starlette) -> Services:
    """The app's open services; RuntimeError outside its lifespan (tools and tests reach in through this)."""
    services = context_of(app).services
    if services is None:
        raise RuntimeError(f"the app's services are not open: {NOT_OPEN}")
    return services


def _open_services(request: Request, detail: str) -> Services:
    services = context_of(request.app).services
    if services is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)
    return services


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return context_of(request.app).settings


async def get_keyring(request: Request) -> KeyRing:
    return context_of(request.app).keyring


async def get_auth_failures(request: Request) -> AuthFailures:
    """Wrong keys per client: the request guard refuses a client over the limit; the login form adds to it."""
    return context_of(request.app).auth_failures


async def get_session_secret(request: Request) -> str:
    secret = context_of(request.app).session_secret
    if secret is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=NO_PAGES)
    return secret


async def get_model_state(request: Request) -> ModelState:
    """The open services' model state; outside the lifespan, one without a model saying why."""
    context = context_of(request.app)
    if context.services is not None:
        return context.services.model_state
    return ModelState(error=SHUTTING_DOWN if context.stopped else None)


async def get_model(state: Annotated[ModelState, Depends(get_model_state)]) -> LoadedModel:
    """The loaded model (read once: a reload does not change it under a request); 503 with the reason when
    there is none."""
    model = state.model
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=state.unavailable_reason)
    return model


async def get_store(request: Request) -> Store:
    """The app's store; 503 when there is none (before start-up or after shutdown)."""
    return _open_services(request, NO_STORE).store


async def get_store_if_open(request: Request) -> Store | None:
    """The app's store, or None while it is not open: for a check that must not refuse a request on its own
    (the page session's logout list; the page's own `StoreDep` answers 503)."""
    services = context_of(request.app).services
    return None if services is None else services.store


async def get_writer(request: Request) -> DurableWriter:
    """The spool-backed writer in front of the store; 503 when it is not open."""
    return _open_services(request, NO_WRITER).writer


async def get_hotspots(request: Request) -> HotspotService:
    """The live hot-issue detector; 503 when it is not running."""
    return _open_services(request, NO_HOTSPOTS).hotspots


async def get_warnings(request: Request) -> WarningDesk:
    """The warning desk (policy, gazetteer, warnings and outbox); 503 when the services are not open."""
    return _open_services(request, NO_WARNINGS).warnings


async def get_deliverer(request: Request) -> Deliverer | None:
    """The webhook deliverer, or None when no subscriber is configured; 503 when the services are not open."""
    return _open_services(request, NO_WARNINGS).deliverer


async def get_metrics(request: Request) -> ServiceMetrics | None:
    """What the service counts for /metrics; None while the services are not open (nothing is counted)."""
    services = context_of(request.app).services
    return None if services is None else services.metrics


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]
AuthFailuresDep = Annotated[AuthFailures, Depends(get_auth_failures)]
SessionSecretDep = Annotated[str, Depends(get_session_secret)]
ModelStateDep = Annotated[ModelState, Depends(get_model_state)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
StoreDep = Annotated[Store, Depends(get_store)]
OpenStoreDep = Annotated[Store | None, Depends(get_store_if_open)]
WriterDep = Annotated[DurableWriter, Depends(get_writer)]
HotspotsDep = Annotated[HotspotService, Depends(get_hotspots)]
WarningsDep = Annotated[WarningDesk, Depends(get_warnings)]
DelivererDep = Annotated[Deliverer | None, Depends(get_deliverer)]
MetricsDep = Annotated[ServiceMetrics | None, Depends(get_metrics)]


# -- who is calling -------------------------------------------------------------------------------------
_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from TRIAGE_API_KEYS; its role decides which routes answer.",
)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": API_KEY_HEADER})


async def current_principal(
    request: Request,
    key: Annotated[str | None, Security(_header)],
    ring: KeyRingDep,
) -> Principal:
    """The caller, from the `X-API-Key` header or (web pages) the signed session; 401 otherwise."""
    checked = getattr(request.state, "key_principal", None)  # by serving.request_guard, before the body
    if key and isinstance(checked, tuple) and checked[0] == key:
        principal: Principal | None = checked[1]
    else:
        principal = ring.authenticate(key) if key else getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    if not len(ring):
        raise _unauthorized("no API keys are configured on this server; set TRIAGE_API_KEYS")
    if key:
        raise _unauthorized("the API key is not valid")
    raise _unauthorized(f"an API key is required in the {API_KEY_HEADER} header")


def require_role(*roles: Role) -> Callable[..., Principal]:
    """A dependency that answers 403 unless the caller's role is one of `roles` (admin always is)."""
    allowed = ", ".join(dict.fromkeys(r.value for r in (*roles, Role.admin)))

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.may(*roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"the {principal.role.value} role may not do this; it needs one of: {allowed}",
            )
        return principal

    check.roles = frozenset((*roles, Role.admin))  # type: ignore[attr-defined]  # read by the route-table test
    return check


PrincipalDep = Annotated[Principal, Depends(current_principal)]
IntakeDep = Annotated[Principal, Depends(require_role(Role.intake))]
ReviewerDep = Annotated[Principal, Depends(require_role(Role.reviewer))]
AdminDep = Annotated[Principal, Depends(require_role(Role.admin))]
