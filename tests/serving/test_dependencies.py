"""How routes get the services: one context per app, one function that opens the services, domain errors
mapped to HTTP by the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

import command.demo_seed
import serving.app
import serving.services
from command.demo_seed import demo_requests, seed
from serving.app import create_app
from serving.dependencies import (
    NO_HOTSPOTS,
    NO_STORE,
    NO_WRITER,
    SHUTTING_DOWN,
    HotspotsDep,
    ModelDep,
    StoreDep,
    WriterDep,
    context_of,
    services_of,
)
from serving.services import Services
from serving.settings import Settings
from serving.spool import SpoolUnavailableError
from tests.keys import ADMIN


def settings_for(tmp_path: Path, model_uri: Path | str, name: str = "triage") -> Settings:
    return Settings(model_uri=str(model_uri), database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
                    spool_dir=tmp_path / f"{name}-spool")


def with_probes(app: FastAPI) -> FastAPI:
    """Routes that ask for one service each and answer 200 when they got it."""

    @app.get("/probe/store")
    def store(service: StoreDep) -> dict[str, str]:
        return {"got": type(service).__name__}

    @app.get("/probe/writer")
    def writer(service: WriterDep) -> dict[str, str]:
        return {"got": type(service).__name__}

    @app.get("/probe/hotspots")
    def hotspots(service: HotspotsDep) -> dict[str, str]:
        return {"got": type(service).__name__}

    @app.get("/probe/model")
    def model(service: ModelDep) -> dict[str, str]:
        return {"got": type(service).__name__}

    return app


EXPECTED = {"store": "Store", "writer": "DurableWriter", "hotspots": "HotspotService", "model": "LoadedModel"}


def test_each_service_answers_503_with_its_reason_before_start_up_and_after_shutdown(
    demo_bundle_dir: Path, tmp_path: Path
) -> None:
    app = with_probes(create_app(settings_for(tmp_path, demo_bundle_dir)))
    client = TestClient(app, headers=ADMIN)
    closed = {name: client.get(f"/probe/{name}") for name in EXPECTED}
    assert {name: r.status_code for name, r in closed.items()} == dict.fromkeys(EXPECTED, 503)
    assert closed["store"].json() == {"detail": NO_STORE}
    assert closed["writer"].json() == {"detail": NO_WRITER}
    assert closed["hotspots"].json() == {"detail": NO_HOTSPOTS}
    assert closed["model"].json()["detail"].startswith("no model loaded: the service is still starting; ")
    with client:
        opened = services_of(app)
        assert {name: client.get(f"/probe/{name}").json()["got"] for name in EXPECTED} == EXPECTED
    assert opened.closed and context_of(app).services is None
    after = {name: client.get(f"/probe/{name}") for name in EXPECTED}
    assert {name: r.status_code for name, r in after.items()} == dict.fromkeys(EXPECTED, 503)
    assert after["store"].json() == {"detail": NO_STORE}
    assert after["model"].json()["detail"].startswith(f"no model loaded: {SHUTTING_DOWN}; ")
    ready = client.get("/readyz")  # a real route: the model's reason comes first
    assert ready.status_code == 503 and ready.json()["detail"].startswith(f"no model loaded: {SHUTTING_DOWN}; ")


def test_a_dependency_override_replaces_the_service_for_the_routes(demo_bundle_dir: Path, tmp_path: Path) -> None:
    from serving.dependencies import get_store

    app = with_probes(create_app(settings_for(tmp_path, demo_bundle_dir)))
    app.dependency_overrides[get_store] = lambda: "a stand-in"
    with TestClient(app, headers=ADMIN) as client:
        assert client.get("/probe/store").json() == {"got": "str"}


def test_the_app_and_the_demo_seeder_open_their_services_through_one_function(
    demo_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert serving.app.open_services is serving.services.open_services is command.demo_seed.open_services
    opened: list[tuple[Settings, Services, dict[str, Any]]] = []

    def recording(settings: Settings) -> Services:
        services = serving.services.open_services(settings)
        wiring = {
            "writer fronts the store": services.writer.store is services.store,
            "detector writes through it": services.hotspots.sink is services.writer,
            "model loaded": services.model_state.model is not None,
        }
        opened.append((settings, services, wiring))
        return services

    monkeypatch.setattr(serving.app, "open_services", recording)
    monkeypatch.setattr(command.demo_seed, "open_services", recording)

    seeded = settings_for(tmp_path, demo_bundle_dir, "seed")
    requests = demo_requests(limit=12)
    assert seed(seeded, requests) == 12
    assert seed(seeded, requests) == 0  # a store in use is left alone: nothing is opened for it
    served = settings_for(tmp_path, demo_bundle_dir, "serve")
    app = create_app(served)
    with TestClient(app, headers=ADMIN):
        assert services_of(app) is opened[-1][1]

    assert [settings for settings, _, _ in opened] == [seeded, served]
    seeder_wiring, app_wiring = (wiring for _, _, wiring in opened)
    assert seeder_wiring == app_wiring == dict.fromkeys(seeder_wiring, True)
    assert all(services.closed for _, services, _ in opened)


def test_the_seeder_refuses_without_a_model_and_closes_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Services] = []

    def recording(settings: Settings) -> Services:
        opened.append(serving.services.open_services(settings))
        return opened[-1]

    monkeypatch.setattr(command.demo_seed, "open_services", recording)
    with pytest.raises(RuntimeError, match="cannot seed the demo cases: "):
        seed(settings_for(tmp_path, tmp_path / "no-model"), demo_requests(limit=3))
    (services,) = opened
    assert services.closed


def test_a_write_neither_the_database_nor_the_spool_took_answers_503_with_its_reason(
    demo_bundle_dir: Path, tmp_path: Path
) -> None:
    """`serving.spool` raises its own error; the app maps it to the 503 FastAPI's HTTPException gave."""
    assert not issubclass(SpoolUnavailableError, HTTPException)  # the spool knows nothing of HTTP
    app = create_app(settings_for(tmp_path, demo_bundle_dir))

    @app.get("/probe/spool-full")
    def spool_full() -> None:
        raise SpoolUnavailableError("the audit store is unreachable and the local spool cannot be written (x)")

    answer = TestClient(app, headers=ADMIN).get("/probe/spool-full")
    assert answer.status_code == 503
    assert answer.json() == {"detail": "the audit store is unreachable and the local spool cannot be written (x)"}
    assert "retry-after" not in answer.headers and "www-authenticate" not in answer.headers
