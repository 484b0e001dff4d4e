"""Tests for the serving API, run against the demo bundle through the app's real lifespan."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.bundle import TriageBundle
from models.mlflow_model import LoadedModel
from serving.app import create_app, run
from serving.dependencies import context_of, get_model
from serving.schemas import EMPTY_TEXT_MESSAGE
from serving.settings import MAX_BATCH, MAX_TEXT_CHARS, Settings, get_settings
from tests.keys import ADMIN

WAGES_TITLE = "东港区恒发鞋厂拖欠我们二十多名工人四个月工资"
WAGES_BODY = (
    "我们在东港区恒发鞋厂做计件工，从去年十一月到现在四个月没有发工资，每人被欠七八千元到两万元不等。"
    "老板说等货款回来再发，可是年都过完了还是没有消息。我们去厂里讨薪被保安拦在门外，"
    "希望人社局劳动保障监察大队帮我们追讨欠薪，依法处理拖欠农民工工资的老板。"
)
PHONE = "13987654321"
REPORTER = "U77123"


def case(case_id: str = "T-1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"case_id": case_id, "title": WAGES_TITLE, "body": WAGES_BODY}
    body.update(fields)
    return body


@pytest.fixture(scope="module")
def client(demo_bundle_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_uri=str(demo_bundle_dir))), headers=ADMIN) as c:
        yield c


@pytest.fixture(scope="module")
def no_model_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    missing = tmp_path_factory.mktemp("empty") / "no-such-model"
    with TestClient(create_app(Settings(model_uri=str(missing))), headers=ADMIN) as c:
        yield c


def assert_422(response: Any, loc: list[str | int], *reason: str) -> dict[str, Any]:
    """The response is a 422 with our shape and an error at `loc` whose message contains `reason`."""
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "invalid request"
    matching = [err for err in payload["detail"] if err["loc"] == loc]
    assert matching, f"no error at {loc}: {payload['detail']}"
    for part in reason:
        assert part in matching[0]["msg"], matching[0]
    assert all("input" not in err for err in payload["detail"])
    return matching[0]


# -- happy paths ------------------------------------------------------------------------------------


def test_triage_returns_the_bundles_routing(client: TestClient, demo_bundle: TriageBundle) -> None:
    response = client.post("/v1/triage", json=case(created_at="2026-07-15T09:30:00+08:00", channel="网站"))
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["case_id"] == "T-1"
    dep = out["department"]
    assert dep["label"] in demo_bundle.classes
    probabilities = [t["probability"] for t in dep["top"]]
    assert len(dep["top"]) == 3
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1 + 1e-9
    assert dep["top"][0] == {"label": dep["label"], "probability": dep["confidence"]}
    assert isinstance(dep["needs_review"], bool)
    assert out["model"] == {"name": "grievance-triage", "version": "test"}
    # What trained is what serves: the same numbers as calling the bundle directly.
    direct = demo_bundle.route_one(WAGES_TITLE, WAGES_BODY)
    assert dep["label"] == direct.label
    assert dep["confidence"] == pytest.approx(direct.confidence, abs=1e-12)
    assert dep["needs_review"] == direct.needs_review


def test_same_request_gives_identical_output(client: TestClient) -> None:
    first = client.post("/v1/triage", json=case())
    second = client.post("/v1/triage", json=case())
    assert first.status_code == second.status_code == 200
    assert first.content == second.content


def test_batch_keeps_order_and_matches_single_calls(client: TestClient) -> None:
    cases = [
        case("B-3"),
        case("B-1", title="南湖区翠湖湾小区旁的化工厂夜里偷排废气", body="气味刺鼻，晚上不敢开窗，请环保部门查处。"),
        case("B-2", title="205路公交车经常不按时发车", body=""),
        case("B-0", title="", body="孩子所在的青林区实验小学要求家长统一购买校服和教辅，价格比外面贵很多。"),
    ]
    response = client.post("/v1/triage/batch", json={"cases": cases})
    assert response.status_code == 200, response.text
    out = response.json()
    assert [r["case_id"] for r in out["results"]] == ["B-3", "B-1", "B-2", "B-0"]
    assert out["model"] == {"name": "grievance-triage", "version": "test"}
    for sent, result in zip(cases, out["results"], strict=True):
        single = client.post("/v1/triage", json=sent).json()
        assert result["department"]["label"] == single["department"]["label"]
        assert result["department"]["needs_review"] == single["department"]["needs_review"]
        assert result["department"]["confidence"] == pytest.approx(single["department"]["confidence"], abs=1e-12)


def test_unpaid_wages_route_to_labour_and_social_security(client: TestClient) -> None:
    out = client.post("/v1/triage", json=case()).json()
    assert out["department"]["label"] == "劳动和社会保障"


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": {"name": "grievance-triage", "version": "test"}}


def test_model_endpoint_describes_the_loaded_model(client: TestClient, demo_bundle: TriageBundle) -> None:
    out = client.get("/v1/model").json()
    assert out["name"] == "grievance-triage"
    assert out["version"] == "test"
    assert out["trained_at"] == "2026-01-01T00:00:00+00:00"
    assert out["metrics"] == {"macro_f1": 0.0}
    assert out["classes"] == demo_bundle.classes
    assert out["alias"] is None


def test_docs_and_schema(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "Grievance triage API"
    assert {"/v1/triage", "/v1/triage/batch", "/v1/model", "/healthz", "/readyz"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["TriageRequest"]
    assert request["properties"]["title"]["maxLength"] == MAX_TEXT_CHARS
    assert request["additionalProperties"] is False
    batch = schema["components"]["schemas"]["BatchRequest"]["properties"]["cases"]
    assert batch["maxItems"] == MAX_BATCH
    responses = schema["paths"]["/v1/triage"]["post"]["responses"]
    assert {"200", "422", "503"} <= set(responses)


# -- no model -------------------------------------------------------------------------------------


def test_missing_model_is_not_ready_but_alive(no_model_client: TestClient) -> None:
    assert no_model_client.get("/healthz").status_code == 200
    ready = no_model_client.get("/readyz")
    assert ready.status_code == 503
    detail = ready.json()["detail"]
    assert detail.startswith("no model loaded: FileNotFoundError")
    assert "no-such-model" in detail
    assert "TRIAGE_MODEL_URI" in detail


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/v1/triage", case()),
        ("post", "/v1/triage/batch", {"cases": [case()]}),
        ("get", "/v1/model", None),
    ],
)
def test_model_routes_answer_503_without_a_model(
    no_model_client: TestClient, method: str, path: str, payload: dict[str, Any] | None
) -> None:
    response = no_model_client.request(method, path, json=payload)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("no model loaded: ")


def test_importing_the_module_loads_nothing() -> None:
    from serving.app import app

    assert context_of(app).services is None  # no model, no store: the lifespan opens them


def test_model_dependency_can_be_overridden(demo_bundle: TriageBundle, demo_bundle_dir: Path) -> None:
    app = create_app(Settings(model_uri=str(demo_bundle_dir)))
    app.dependency_overrides[get_model] = lambda: LoadedModel(demo_bundle, "memory", name="other", version="42")
    with TestClient(app, headers=ADMIN) as c:
        out = c.post("/v1/triage", json=case()).json()
    assert out["model"] == {"name": "other", "version": "42"}


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "loc", "reason"),
    [
        (case(title="", body=""), ["body"], EMPTY_TEXT_MESSAGE),
        (case(title="  ", body="\n\t "), ["body"], EMPTY_TEXT_MESSAGE),
        ({"case_id": "T-1"}, ["body"], EMPTY_TEXT_MESSAGE),
        (case(title="投" * (MAX_TEXT_CHARS + 1)), ["body", "title"], "at most 20000 characters"),
        (case(body="诉" * (MAX_TEXT_CHARS + 1)), ["body", "body"], "at most 20000 characters"),
        (case(title=[1, 2, 3]), ["body", "title"], "valid string"),
        (case(created_at="not a date"), ["body", "created_at"], "datetime"),
        ({"title": WAGES_TITLE}, ["body", "case_id"], "Field required"),
        (case(case_id=""), ["body", "case_id"], "at least 1 character"),
        (case(case_id="x" * 65), ["body", "case_id"], "at most 64 characters"),
        (case(priority="high"), ["body", "priority"], "Extra inputs are not permitted"),
        (case(channel="渠" * 33), ["body", "channel"], "at most 32 characters"),
    ],
    ids=[
        "empty",
        "blank",
        "no-text",
        "title-too-long",
        "body-too-long",
        "title-list",
        "bad-date",
        "no-case-id",
        "empty-case-id",
        "long-case-id",
        "extra-field",
        "long-channel",
    ],
)
def test_invalid_case_is_422_naming_the_field(
    client: TestClient, payload: dict[str, Any], loc: list[str | int], reason: str
) -> None:
    assert_422(client.post("/v1/triage", json=payload), loc, reason)


def test_text_at_the_limit_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/triage", json=case(body="工资" * (MAX_TEXT_CHARS // 2)))
    assert response.status_code == 200, response.text


def test_batch_over_the_limit_is_422(client: TestClient) -> None:
    cases = [{"case_id": f"C-{i}", "title": "拖欠工资"} for i in range(MAX_BATCH + 1)]
    assert_422(client.post("/v1/triage/batch", json={"cases": cases}), ["body", "cases"], "at most 1000 items")


def test_empty_batch_is_422(client: TestClient) -> None:
    assert_422(client.post("/v1/triage/batch", json={"cases": []}), ["body", "cases"], "at least 1 item")


def test_duplicate_case_id_in_batch_is_422_naming_it(client: TestClient) -> None:
    cases = [case("DUP-7"), case("OK-1"), case("DUP-7")]
    err = assert_422(client.post("/v1/triage/batch", json={"cases": cases}), ["body", "cases"], "DUP-7")
    assert err["type"] == "duplicate_case_id"


def test_invalid_case_inside_a_batch_is_located(client: TestClient) -> None:
    cases = [case("A"), case("B", title="", body="")]
    assert_422(client.post("/v1/triage/batch", json={"cases": cases}), ["body", "cases", 1], EMPTY_TEXT_MESSAGE)


def test_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/triage", content=b"case_id=1&title=abc", headers={"content-type": "application/json"})
    assert_422(response, ["body", 0], "JSON decode error")


def test_error_does_not_echo_case_text(client: TestClient) -> None:
    response = client.post("/v1/triage", json=case(title="投" * (MAX_TEXT_CHARS + 1), body=f"电话{PHONE}"))
    assert response.status_code == 422
    assert PHONE not in response.text
    assert "投投投" not in response.text


def test_lower_limits_from_settings_are_enforced(demo_bundle_dir: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), max_text_chars=100, max_batch=2)
    with TestClient(create_app(settings), headers=ADMIN) as c:
        assert_422(c.post("/v1/triage", json=case(body="欠" * 101)), ["body", "body"], "at most 100 characters")
        three = {"cases": [case("1"), case("2"), case("3")]}
        assert_422(c.post("/v1/triage/batch", json=three), ["body", "cases"], "at most 2 items")
        short = {"title": "拖欠工资", "body": "欠" * 100}
        long_in_batch = {"cases": [case("1", **short), case("2", title="欠" * 101, body="")]}
        assert_422(c.post("/v1/triage/batch", json=long_in_batch), ["body", "cases", 1, "title"], "at most 100")
        assert c.post("/v1/triage", json=case(**short)).status_code == 200
        assert c.post("/v1/triage/batch", json={"cases": [case("1", **short), case("2", **short)]}).status_code == 200


def test_oversized_body_is_413(demo_bundle_dir: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), max_body_bytes=2_000)
    big = json.dumps(case(body="欠薪" * 500)).encode()
    assert len(big) > 2_000
    with TestClient(create_app(settings), headers=ADMIN) as c:
        assert c.post("/v1/triage", content=big, headers={"content-type": "application/json"}).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            for i in range(0, len(big), 500):
                yield big[i : i + 500]

        streamed = c.post("/v1/triage", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert c.post("/v1/triage", json=case()).status_code == 200


def test_default_body_limit_admits_a_full_batch_of_escaped_chinese() -> None:
    one_case = json.dumps(case("x" * 64, title="投" * MAX_TEXT_CHARS, body="诉" * MAX_TEXT_CHARS))
    assert len(one_case) * MAX_BATCH < Settings().body_limit_bytes


# -- logging --------------------------------------------------------------------------------------


def test_logs_name_the_case_but_hold_no_case_text(demo_bundle_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    title = "金桂园小区物业公司拖欠保洁员工资"
    body = f"我是保洁员李阿姨，物业已经三个月没给我们发工资了，我的电话是{PHONE}，请帮忙处理。"
    with TestClient(create_app(Settings(model_uri=str(demo_bundle_dir), log_level="DEBUG")), headers=ADMIN) as c:
        caplog.clear()
        single = c.post("/v1/triage", json=case("LOG-1", title=title, body=body, reporter_id=REPORTER))
        batch = c.post(
            "/v1/triage/batch", json={"cases": [case("LOG-2", title=title, body=body, reporter_id=REPORTER)]}
        )
        invalid = c.post("/v1/triage", json=case("LOG-3", title="", body="", reporter_id=REPORTER))
    assert single.status_code == batch.status_code == 200
    assert invalid.status_code == 422
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "LOG-1" in logged and "LOG-2" in logged
    assert single.json()["department"]["label"] in logged
    for secret in (title, body, PHONE, REPORTER, "李阿姨", "保洁员"):
        assert secret not in logged


def test_load_failure_is_logged_by_type_and_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "bundle.joblib").write_text("not a pickle")
    with TestClient(create_app(Settings(model_uri=str(tmp_path))), headers=ADMIN) as c:
        assert c.get("/readyz").status_code == 503
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("serving")]
    assert errors and str(tmp_path) in errors[0].getMessage()


# -- run ------------------------------------------------------------------------------------------


def test_run_starts_uvicorn_on_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv("TRIAGE_MODEL_URI", "placeholder")
    try:
        run(host="0.0.0.0", port=8123, model_uri="models:/grievance-triage/7")
        assert get_settings().model_uri == "models:/grievance-triage/7"
    finally:
        get_settings.cache_clear()
    (args, kwargs) = calls[0]
    assert args == ("serving.app:create_app",)
    assert kwargs["factory"] is True
    assert (kwargs["host"], kwargs["port"]) == ("0.0.0.0", 8123)
    # The ticket system's pooled connections stay open between bursts, as under the systemd unit.
    assert kwargs["timeout_keep_alive"] == 75
