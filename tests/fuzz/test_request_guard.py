"""Before a body is read: no key, little body; too many wrong keys from one client, 429 for a while."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.request_guard import FAILED_AUTH_LIMIT, UNAUTHENTICATED_BODY_BYTES
from serving.settings import Settings
from tests.fuzz.test_body_limit import CHUNK, CountingBody
from tests.keys import INTAKE, INTAKE_KEY

TRIES = int(FAILED_AUTH_LIMIT.split("/")[0])


@pytest.fixture
def client(demo_bundle_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        spool_dir=tmp_path / "spool")
    assert settings.body_limit_bytes > 100 * UNAUTHENTICATED_BODY_BYTES
    with TestClient(create_app(settings)) as c:
        yield c


def post(client: TestClient, path: str, headers: dict[str, str], body: CountingBody,
         peer: str = "203.0.113.7", method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """A request through the started app's ASGI interface from `peer`; (status, headers, body)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": (peer, 50000), "server": ("testserver", 80),
    }

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert client.portal is not None
    client.portal.call(client.app, scope, body, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers_out, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("key", [None, "not-a-key-of-this-server-000000"], ids=["no-key", "wrong-key"])
def test_a_large_body_without_a_valid_key_is_refused_before_it_is_read(client: TestClient, key: str | None) -> None:
    body = CountingBody(200 * 1024 * 1024)
    headers = {**JSON, "content-length": str(body.total), **({"x-api-key": key} if key else {})}
    status, _, payload = post(client, "/v1/triage/batch", headers, body)
    assert status == 413 and "without a valid API key" in json.loads(payload)["detail"]
    assert body.pulled == 0


def test_a_streamed_body_without_a_key_is_cut_off_at_the_small_limit(client: TestClient) -> None:
    body = CountingBody(50 * UNAUTHENTICATED_BODY_BYTES)
    status, _, _ = post(client, "/v1/triage", JSON, body)
    assert status == 413
    assert UNAUTHENTICATED_BODY_BYTES < body.pulled <= UNAUTHENTICATED_BODY_BYTES + CHUNK


def test_a_valid_key_may_still_send_more_than_the_small_limit(client: TestClient) -> None:
    case = {"case_id": "BIG-1", "title": "路" * 19_000 + "灯坏了", "body": "小区门口路灯坏了。" * 2000}
    raw = json.dumps(case, ensure_ascii=False).encode()
    assert len(raw) > UNAUTHENTICATED_BODY_BYTES
    assert client.post("/v1/triage", content=raw, headers={**JSON, **INTAKE}).status_code == 200


def test_too_many_wrong_keys_from_one_client_are_refused_for_a_while(client: TestClient) -> None:
    wrong = {"x-api-key": "wrong-key-0123456789abcdef-xyz"}
    statuses = [post(client, "/v1/model", wrong, CountingBody(0), method="GET")[0] for _ in range(TRIES)]
    assert set(statuses) == {401}
    status, headers, payload = post(client, "/v1/model", wrong, CountingBody(0), method="GET")
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert "too many wrong keys" in json.loads(payload)["detail"]
    # Even the right key is refused from that client for now (a guesser cannot tell which one was right) ...
    assert post(client, "/v1/model", {"x-api-key": INTAKE_KEY}, CountingBody(0), method="GET")[0] == 429
    # ... and the login form too; another client is not affected.
    assert post(client, "/review/login", {}, CountingBody(0))[0] == 429
    assert post(client, "/v1/model", wrong, CountingBody(0), peer="198.51.100.9", method="GET")[0] == 401


def test_wrong_keys_typed_into_the_login_form_count_too(client: TestClient) -> None:
    page = client.get("/review/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    for _ in range(TRIES):
        answer = client.post("/review/login", data={"api_key": "wrong-key-0123456789abcdef-xyz", "csrf_token": token,
                                                    "next": "/review"})
        assert answer.status_code == 401
    refused = client.post("/review/login", data={"api_key": INTAKE_KEY, "csrf_token": token, "next": "/review"})
    assert refused.status_code == 429
