"""`POST /v1/admin/reload`: a new model swapped in without failing requests; a bad one refused, the old kept."""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.bundle import TriageBundle
from models.mlflow_model import LoadedModel
from serving.app import create_app
from serving.dependencies import services_of
from serving.settings import Settings
from tests.keys import ADMIN, INTAKE, REVIEWER

CASE = {"title": "东港区恒发鞋厂拖欠工人四个月工资", "body": "我们二十多名工人被欠薪，请劳动保障监察大队帮忙追讨。"}


def new_case() -> dict[str, Any]:
    return {"case_id": f"RELOAD-{uuid.uuid4().hex[:12]}", **CASE}


@pytest.fixture(scope="module")
def second_bundle_dir(demo_bundle: TriageBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo bundle again, under another version (what a promotion would bring in)."""
    directory = tmp_path_factory.mktemp("bundle-v2")
    replace(demo_bundle, metadata={**demo_bundle.metadata, "model_version": "test-2"}).save(directory)
    return directory


@pytest.fixture(scope="module")
def corrupt_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bundle-corrupt")
    (directory / "bundle.joblib").write_bytes(b"this is not a pickled model")
    return directory


@pytest.fixture
def client(demo_bundle_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        reload_model_dir=tmp_path_factory.getbasetemp())
    with TestClient(create_app(settings), headers=INTAKE) as c:
        yield c


def serving_version(client: TestClient) -> str:
    answer = client.post("/v1/triage", json=new_case())
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]["version"]


def reload(client: TestClient, body: dict[str, Any] | None = None) -> Any:
    return client.post("/v1/admin/reload", json=body, headers=ADMIN)


def test_reload_swaps_in_the_new_model_and_names_both(client: TestClient, second_bundle_dir: Path) -> None:
    assert serving_version(client) == "test"
    response = reload(client, {"model_uri": str(second_bundle_dir)})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["previous"] == {"name": "grievance-triage", "version": "test"}
    assert out["current"] == {"name": "grievance-triage", "version": "test-2"}
    assert out["model_uri"] == str(second_bundle_dir)
    assert serving_version(client) == "test-2"
    assert client.get("/v1/model").json()["version"] == "test-2"
    assert client.get("/readyz").json()["model"]["version"] == "test-2"


def test_the_served_model_is_kept_out_of_the_collectors_passes(client: TestClient, second_bundle_dir: Path) -> None:
    """At start-up and after a reload the model's objects are frozen (`models.long_lived`): the collector's
    full passes no longer walk them."""
    try:
        for _ in range(2):
            tracked = {id(o) for o in gc.get_objects()}
            bundle = services_of(client.app).model_state.model.bundle
            assert id(bundle) not in tracked and id(bundle.router) not in tracked
            assert reload(client, {"model_uri": str(second_bundle_dir)}).status_code == 200
    finally:
        gc.unfreeze()


def test_reload_without_a_body_loads_the_configured_model(client: TestClient, second_bundle_dir: Path) -> None:
    assert reload(client, {"model_uri": str(second_bundle_dir)}).status_code == 200
    response = client.post("/v1/admin/reload", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["current"]["version"] == "test"
    assert serving_version(client) == "test"


@pytest.mark.parametrize("bad", ["corrupt", "missing"])
def test_a_model_that_cannot_load_is_refused_and_the_old_one_keeps_serving(
    client: TestClient, corrupt_bundle_dir: Path, tmp_path: Path, bad: str
) -> None:
    uri = str(corrupt_bundle_dir if bad == "corrupt" else tmp_path / "no-such-model")
    response = reload(client, {"model_uri": uri})
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert uri in detail and "still serving grievance-triage version test" in detail
    assert serving_version(client) == "test"
    assert client.get("/readyz").status_code == 200


class _RunsOnUnpickle:
    """A "model" whose unpickling runs code: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("where", ["outside", "traversal", "runs", "file-url", "relative"])
def test_reload_loads_nothing_outside_the_registry_and_the_allowed_directory(
    demo_bundle_dir: Path, tmp_path: Path, where: str
) -> None:
    import joblib

    allowed, outside = tmp_path / "models", tmp_path / "elsewhere"
    allowed.mkdir()
    outside.mkdir()
    marker = tmp_path / "code-ran"
    joblib.dump(_RunsOnUnpickle(marker), outside / "bundle.joblib")
    uri = {"outside": str(outside), "traversal": f"{allowed}/../elsewhere", "runs": "runs:/abc/model",
           "file-url": f"file://{outside}", "relative": "elsewhere"}[where]
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        reload_model_dir=allowed)
    with TestClient(create_app(settings), headers=ADMIN) as c:
        response = c.post("/v1/admin/reload", json={"model_uri": uri})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "model_uri"]
        assert c.get("/v1/model").json()["version"] == "test"
    assert not marker.exists(), "the file was unpickled"


def test_without_an_allowed_directory_reload_takes_registry_uris_only(demo_bundle_dir: Path, tmp_path: Path,
                                                                      second_bundle_dir: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}")
    with TestClient(create_app(settings), headers=ADMIN) as c:
        response = c.post("/v1/admin/reload", json={"model_uri": str(second_bundle_dir)})
        assert response.status_code == 422 and "TRIAGE_RELOAD_MODEL_DIR" in response.text
        assert c.post("/v1/admin/reload").status_code == 200  # the configured model is the operator's choice


def test_reload_refuses_unknown_fields(client: TestClient) -> None:
    assert reload(client, {"model_url": "models:/x@champion"}).status_code == 422
    assert serving_version(client) == "test"


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-API-Key": "wrong-key-0123456789abcdef"}, 401),
                                                 (INTAKE, 403), (REVIEWER, 403)])
def test_only_admins_may_reload(client: TestClient, second_bundle_dir: Path, headers: dict[str, str],
                                status: int) -> None:
    response = client.post("/v1/admin/reload", json={"model_uri": str(second_bundle_dir)},
                           headers={"X-API-Key": ""} | headers)
    assert response.status_code == status, response.text
    assert serving_version(client) == "test"


def test_reload_documents_its_refusals(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/v1/admin/reload"]["post"]["responses"]
    assert {"200", "401", "403", "409", "422"} <= set(responses)


class GatedBundle(TriageBundle):
    """A bundle whose scoring waits for the test to let it go: a request held in flight."""

    def score(self, cases: Any) -> tuple[np.ndarray, np.ndarray | None]:
        self.__dict__["entered"].set()
        assert self.__dict__["release"].wait(30), "the test never released the request"
        return super().score(cases)


def test_a_request_in_flight_finishes_on_the_model_it_started_with(
    client: TestClient, demo_bundle: TriageBundle, second_bundle_dir: Path
) -> None:
    gated = GatedBundle(router=demo_bundle.router, thresholds=demo_bundle.thresholds,
                        target_precision=demo_bundle.target_precision,
                        metadata={**demo_bundle.metadata, "model_version": "in-flight"})
    entered, release = threading.Event(), threading.Event()
    gated.__dict__.update(entered=entered, release=release)
    state = services_of(client.app).model_state
    state.model = LoadedModel(gated, "memory", name="grievance-triage", version="in-flight")
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(client.post, "/v1/triage", json=new_case())
        assert entered.wait(30)
        swapped = reload(client, {"model_uri": str(second_bundle_dir)})  # while that request is still scoring
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["previous"]["version"] == "in-flight"
        release.set()
        answer = in_flight.result(timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"]["version"] == "in-flight"
    assert serving_version(client) == "test-2"


def test_no_request_fails_while_models_are_reloaded_again_and_again(
    client: TestClient, demo_bundle_dir: Path, second_bundle_dir: Path
) -> None:
    stop = threading.Event()

    def keep_triaging() -> list[tuple[int, str | None]]:
        seen = []
        while not stop.is_set() or not seen:
            response = client.post("/v1/triage", json=new_case())
            seen.append((response.status_code, response.json().get("model", {}).get("version")))
        return seen

    with ThreadPoolExecutor(max_workers=6) as pool:
        workers = [pool.submit(keep_triaging) for _ in range(4)]
        # Two admins reloading at once, twice over: the lock runs them one after the other.
        reloads = [pool.submit(reload, client, {"model_uri": str(uri)})
                   for uri in (second_bundle_dir, demo_bundle_dir, second_bundle_dir, demo_bundle_dir)]
        statuses = [r.result(timeout=120).status_code for r in reloads]
        stop.set()
        answers = [a for w in workers for a in w.result(timeout=120)]
    assert statuses == [200, 200, 200, 200]
    assert len(answers) >= 8
    assert {status for status, _ in answers} == {200}
    assert {version for _, version in answers} <= {"test", "test-2"}


def test_a_model_cut_by_another_segmenter_is_refused_and_the_old_one_keeps_serving(
    client: TestClient, demo_bundle: TriageBundle, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 15: one process segments text one way; a model trained with the other segmenter needs a
    restart, never a reload that would cut its cases the wrong way."""
    from features import tokenizer

    directory = tmp_path_factory.mktemp("bundle-rjieba")
    metadata = {**demo_bundle.metadata, "model_version": "rjieba", "tokenizer": tokenizer.spec("rjieba").as_dict()}
    replace(demo_bundle, metadata=metadata).save(directory)
    response = reload(client, {"model_uri": str(directory)})
    assert response.status_code == 409, response.text
    assert "restart it with the new model" in response.json()["detail"]
    assert serving_version(client) == "test" and tokenizer.active() == "jieba"
