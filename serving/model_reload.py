"""Loading the served model: once at start-up, and again on `POST /v1/admin/reload` without stopping.

A reload loads and warms the new model *beside* the one serving, then swaps it in with one attribute
assignment (`state.model = new`). Each request took its model object from `state.model` when it started
(the `get_model` dependency), so requests in flight finish on the model they began with, and requests
that start after the swap get the new one; none waits and none fails. A model that cannot be loaded or
warmed up is never swapped in: the old one keeps serving. Reloads are serialised by a lock on the
`ModelState`, so two admins reloading at once cannot interleave.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import mlflow

from models.long_lived import settle_long_lived
from models.mlflow_model import LoadedModel, load_model
from serving.schemas import ModelRef
from serving.state import HOW_TO_FIX, ModelState, model_ref

logger = logging.getLogger(__name__)

WARM_UP_TITLE = "预热"


class ReloadError(RuntimeError):
    """The new model could not be loaded or warmed up; the one serving was left in place."""


def warm_up(model: LoadedModel) -> None:
    """Score one made-up case through the router and the risk model.

    Builds the bundle's compiled scorer and the risk model's lazy state now, so the first real request
    after a start or a reload does not pay for it, and a model that cannot score fails here, not in a
    request. It takes the service's path (`triage_service`): the reasons' contributions read with the case,
    which also finds, once, the trees that read bursts (about 80 ms for the production model), and the
    terms that reasons quote are unpacked.
    """
    bundle = model.bundle
    bundle.finish(bundle.pending([(WARM_UP_TITLE, "")], contributions=True))
    if bundle.risk is not None:
        bundle.risk.prepare_reasons()


def load_and_warm(uri: str) -> tuple[LoadedModel | None, str | None]:
    """Load and warm up the model; on failure, log and return the reason instead of raising.

    The reason is the exception type and message (a URI or path), never case text.
    """
    try:
        model = load_model(uri)
        warm_up(model)
    except Exception as exc:
        reason = explain_load_error(uri, exc)
        logger.error("could not load the model from %s: %s; %s", uri, reason, HOW_TO_FIX)
        return None, reason
    ref = model_ref(model)
    logger.info("serving model %s version %s (alias %s) from %s", ref.name, ref.version, model.alias, uri)
    return model, None


def explain_load_error(uri: str, exc: Exception) -> str:
    """Why `uri` could not be loaded, in words an operator can act on.

    A registry URI whose model or alias is not registered (an empty MLflow store, a first start before
    any training) says which model was looked for and in which registry, not just MLflow's message.
    """
    reason = f"{type(exc).__name__}: {exc}"
    if uri.startswith("models:/") and getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
        wanted = uri.removeprefix("models:/").replace("/", " version ", 1)
        return f"no model registered as {wanted} in the MLflow registry at {_registry()} ({reason})"
    return reason


def _registry() -> str:
    """The registry URI without a password (a database URI may carry one)."""
    uri = mlflow.get_registry_uri()
    password = urlsplit(uri).password
    return uri.replace(f":{password}@", ":***@", 1) if password else uri


@dataclass(frozen=True)
class Reloaded:
    previous: ModelRef | None
    current: ModelRef
    uri: str
    alias: str | None
    load_seconds: float


def reload_model(state: ModelState, uri: str) -> Reloaded:
    """Load `uri`, warm it up, then swap it in; ReloadError (old model untouched) if it cannot be used.

    Loading happens under the state's reload lock but outside any request path: triage keeps answering
    with the old model until the single assignment that installs the new one.
    """
    with state.reload_lock:
        started = time.perf_counter()
        previous = state.model
        model, reason = load_and_warm(uri)
        if model is None:
            still = "no model" if previous is None else _describe(model_ref(previous))
            raise ReloadError(f"could not load the model from {uri}: {reason}; still serving {still}")
        state.model = model  # the swap: one assignment, atomic for the requests reading it
        state.error = None
        settle_long_lived()  # the new model out of the collector's passes; the old one's cycles collected
        result = Reloaded(
            previous=None if previous is None else model_ref(previous),
            current=model_ref(model),
            uri=uri,
            alias=model.alias,
            load_seconds=time.perf_counter() - started,
        )
    logger.info("reloaded: %s -> %s from %s in %.1fs", "none" if result.previous is None else
                _describe(result.previous), _describe(result.current), uri, result.load_seconds)
    return result


def _describe(ref: ModelRef) -> str:
    return f"{ref.name or 'unnamed'} version {ref.version or 'unknown'}"
