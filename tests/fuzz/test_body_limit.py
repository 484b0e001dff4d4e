"""Oversized and undecodable request bodies: refused early, in the documented shape.

The size limit is driven through the raw ASGI interface with a `receive` that counts what the app pulled:
the test client would read a whole streaming body into memory before the app saw it, which hides
exactly the buffering this guards against.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from tests.keys import ADMIN, INTAKE

LIMIT = 10_000
CHUNK = 1_024
TOTAL = 50 * LIMIT  # what a hostile client would send if nothing stopped it


@pytest.fixture(scope="module")
def client(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("body-limit")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRIAGE_MAX_BODY_BYTES", str(LIMIT))  # the deployment knob, read like in production
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp / 'triage.db'}",
                        spool_dir=tmp / "spool")
    mp.undo()
    assert settings.body_limit_bytes == LIMIT
    with TestClient(create_app(settings), headers=ADMIN) as c:
        yield c


class CountingBody:
    """An ASGI `receive` serving `total` bytes in `CHUNK`-sized pieces, counting how many the app pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    async def __call__(self) -> dict[str, Any]:
        if self.pulled >= self.total:
            return {"type": "http.disconnect"}
        size = min(CHUNK, self.total - self.pulled)
        self.pulled += size
        return {"type": "http.request", "body": b" " * size, "more_body": self.pulled < self.total}


def call_asgi(client: TestClient, path: str, headers: dict[str, str], body: CountingBody) -> tuple[int, bytes]:
    """POST through the started app's ASGI interface; (status, response body)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert client.portal is not None
    client.portal.call(client.app, scope, body, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


HEADERS = {"content-type": "application/json", **INTAKE}


@pytest.mark.parametrize("path", ["/v1/triage", "/v1/triage/batch", "/v1/admin/reload"])
def test_a_declared_oversized_body_is_refused_without_reading_any_of_it(client: TestClient, path: str) -> None:
    body = CountingBody(TOTAL)
    status, payload = call_asgi(client, path, {**HEADERS, **ADMIN, "content-length": str(TOTAL)}, body)
    assert status == 413
    assert json.loads(payload) == {"detail": f"request body over {LIMIT} bytes"}
    assert body.pulled == 0


@pytest.mark.parametrize("declared", [None, str(LIMIT // 2)], ids=["chunked", "understated-length"])
def test_a_streamed_oversized_body_is_cut_off_at_the_limit(client: TestClient, declared: str | None) -> None:
    """Without a Content-Length (chunked), or with one that lies, the app stops pulling just past the limit."""
    body = CountingBody(TOTAL)
    headers = dict(HEADERS) if declared is None else {**HEADERS, "content-length": declared}
    status, payload = call_asgi(client, "/v1/triage", headers, body)
    assert status == 413
    assert json.loads(payload) == {"detail": f"request body over {LIMIT} bytes"}
    assert LIMIT < body.pulled <= LIMIT + CHUNK


def test_a_body_at_the_limit_is_read_and_answered(client: TestClient) -> None:
    """The limit refuses only what is over it: a streamed body of exactly LIMIT bytes reaches the route."""
    case = json.dumps({"case_id": "LIMIT-1", "title": "路灯坏了", "body": ""}).encode()
    padded = case + b" " * (LIMIT - len(case))  # JSON allows trailing whitespace

    class Exact(CountingBody):
        async def __call__(self) -> dict[str, Any]:
            self.pulled = len(padded)
            return {"type": "http.request", "body": padded, "more_body": False}

    body = Exact(LIMIT)
    status, payload = call_asgi(client, "/v1/triage", dict(HEADERS), body)
    assert status == 200, payload
    assert json.loads(payload)["case_id"] == "LIMIT-1"


def test_over_the_limit_through_the_http_client_too(client: TestClient) -> None:
    response = client.post("/v1/triage", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("raw", [b"{\xff}", b'{"case_id": "x", "title": "\xe7\x87"}', b"\x80"])
def test_a_body_that_is_not_utf8_is_invalid_json_not_a_400(client: TestClient, raw: bytes) -> None:
    """FastAPI answers such bodies 400, which the schema does not document (found by schemathesis)."""
    response = client.post("/v1/triage", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json() == {
        "error": "invalid request",
        "detail": [{"type": "json_invalid", "loc": ["body"], "msg": "the body is not JSON text in UTF-8"}],
    }


def test_other_http_errors_keep_their_status_and_detail(client: TestClient) -> None:
    response = client.get("/v1/alerts/no-such-alert")
    assert response.status_code == 404
    assert response.json() == {"detail": "no alert with id 'no-such-alert', and no hot issue of that id has "
                                         "raised one (a hot issue with level null has not yet)"}
