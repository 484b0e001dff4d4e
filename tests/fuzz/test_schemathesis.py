"""schemathesis against the app's own OpenAPI schema: every operation, generated valid and invalid input.

Every call carries the admin key, so authentication does not answer 401 before the handlers run; the
checks are that nothing answers 5xx and that every status code, content type and body is the one the
schema documents. The app runs in process (ASGI) on the demo bundle with its own audit store.

schemathesis's own pytest integration (`schemathesis.pytest.from_fixture`) fails under pytest 9.2
(`Function` has no `_nodeid`), so each operation is a plain parametrized test that draws cases from
the operation's hypothesis strategy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.app import create_app
from serving.settings import Settings
from store.scratch import create_schema, drop_schema, schema_url
from tests.keys import ADMIN
from tests.serving.conftest import POSTGRES_URL, postgres_admin  # noqa: F401 (fixture)

#: Per operation and mode; raise it (e.g. 200) with SCHEMATHESIS_MAX_EXAMPLES to hunt for new failures.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) for every operation of the schema, read from an app that is built but not started.

    Invalid input (negative mode) only for operations that take some: there is nothing to break in `GET /healthz`.
    """
    spec = create_app(Settings(model_uri="unused")).openapi()
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            out.append((method.upper(), path, GenerationMode.POSITIVE))
            if op.get("parameters") or op.get("requestBody"):
                out.append((method.upper(), path, GenerationMode.NEGATIVE))
    return out


CASES = _cases()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The audit store behind the app: a SQLite file, or a fresh PostgreSQL schema (which, unlike SQLite,
    refuses NUL characters in text: the fuzzer found 500s there that SQLite hid)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('schemathesis-db') / 'triage.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    schema = create_schema(admin, "triage_fuzz_")
    yield schema_url(POSTGRES_URL, schema)
    drop_schema(admin, schema)


@pytest.fixture(scope="module")
def api_schema(
    demo_bundle_dir: Path, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    """The schema served by a live app; a private MLflow store so generated reload URIs read nothing real."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    app = create_app(Settings(model_uri=str(demo_bundle_dir), database_url=database_url, spool_dir=tmp / "spool"))
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        asgi.shutdown_lifespans()
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_every_operation_answers_as_documented(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=dict(ADMIN), checks=CHECKS)

    run()


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("POST", "/v1/triage", {"case_id": "NUL-1", "title": "燃气\x00泄漏"}),
        ("POST", "/v1/triage/batch", {"cases": [{"case_id": "NUL-2", "title": "ok", "reporter_id": "U\x00"}]}),
        ("GET", "/v1/cases/a%00b", None),
        ("GET", "/v1/alerts/a%00b", None),
        ("GET", "/v1/review-queue?department=a%00b", None),
        ("POST", "/v1/cases/NUL-1/reviews", {"action": "confirm", "note": "\x00"}),
    ],
)
def test_nul_characters_are_refused_as_invalid_input(
    api_schema: schemathesis.BaseSchema, method: str, path: str, payload: dict[str, object] | None
) -> None:
    """422 naming the field, on either store: PostgreSQL cannot keep NUL, and used to answer 500."""
    with asgi.get_client(api_schema.app) as client:
        response = client.request(method, path, json=payload, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert "nul_character" in {issue["type"] for issue in response.json()["detail"]}


@pytest.mark.parametrize(
    ("method", "path", "form", "status"),
    [
        ("GET", "/review/cases/a%00b", None, 404),
        ("GET", "/review?department=a%00b", None, 200),  # an unusable filter is ignored, like an unknown level
        ("POST", "/review/cases/a%00b/reviews", {"action": "confirm"}, 404),
        ("POST", "/review/cases/NUL-1/reviews", {"action": "change", "note": "a\x00b"}, 400),
    ],
)
def test_the_reviewer_pages_answer_nul_characters_without_a_500(
    api_schema: schemathesis.BaseSchema, method: str, path: str, form: dict[str, str] | None, status: int
) -> None:
    """The pages are outside the OpenAPI schema, so the fuzzer does not reach them: the same NUL probes by hand."""
    with asgi.get_client(api_schema.app) as client:
        response = client.request(method, path, data=form, headers=ADMIN, allow_redirects=False)
    assert response.status_code == status, response.text[:300]


@pytest.mark.parametrize("query", ["offset=9223372036854775808", "limit=1&offset=1000000001"])
def test_a_queue_offset_past_any_sql_integer_is_invalid_input(api_schema: schemathesis.BaseSchema, query: str) -> None:
    """Found by schemathesis with more examples: 2**63 overflowed SQLite's and PostgreSQL's integers (500)."""
    with asgi.get_client(api_schema.app) as client:
        response = client.get(f"/v1/review-queue?{query}", headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]
