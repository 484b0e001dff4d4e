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
from tests.keys import ADMIN

MAX_EXAMPLES = 30
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


@pytest.fixture(scope="module")
def api_schema(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """The schema served by a live app; a private MLflow store so generated reload URIs read nothing real."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    app = create_app(
        Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp / 'triage.db'}", spool_dir=tmp / "spool")
    )
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
