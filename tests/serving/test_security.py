"""What a hostile browser or caller meets: CORS shut unless listed, security headers, keys never echoed,
the session cookie's flags, 401 against 403, and keys compared in constant time."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

import serving.auth
from serving.app import create_app
from serving.auth import KeyRing
from serving.dependencies import context_of
from serving.settings import Settings
from tests.keys import ADMIN_KEY, API_KEYS, INTAKE, INTAKE_KEY, REVIEWER, REVIEWER_KEY

TICKETS = "https://tickets.example.gov.cn"
EVIL = "https://evil.example.com"
CASE = {"case_id": "SEC-1", "title": "小区垃圾无人清运", "body": "已经一周没人收垃圾了"}
ALL_KEYS = (INTAKE_KEY, REVIEWER_KEY, ADMIN_KEY)


def preflight(client: TestClient, origin: str, path: str = "/v1/triage") -> dict[str, str]:
    answer = client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"})
    return {k.lower(): v for k, v in answer.headers.items()}


@pytest.fixture(scope="module")
def client(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("security") / "triage.db"
    app = create_app(Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{database}"))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def cors_client(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("security-cors") / "triage.db"
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{database}",
                        cors_origins=f"{TICKETS}, http://127.0.0.1:9000")  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as c:
        yield c


# -- CORS -------------------------------------------------------------------------------------------
def test_cors_is_off_by_default(client: TestClient) -> None:
    headers = preflight(client, EVIL)
    assert not any(name.startswith("access-control-") for name in headers)
    answer = client.post("/v1/triage", json=CASE, headers={**INTAKE, "Origin": EVIL})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in {k.lower() for k in answer.headers}


def test_cors_allows_only_the_listed_origins(cors_client: TestClient) -> None:
    allowed = preflight(cors_client, TICKETS)
    assert allowed["access-control-allow-origin"] == TICKETS
    assert "x-api-key" in allowed["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed  # the API takes keys, never cookies
    assert preflight(cors_client, "http://127.0.0.1:9000")["access-control-allow-origin"] == "http://127.0.0.1:9000"
    for origin in (EVIL, "https://tickets.example.gov.cn.evil.example.com", "http://tickets.example.gov.cn"):
        assert "access-control-allow-origin" not in preflight(cors_client, origin), origin
    answer = cors_client.post("/v1/triage", json={**CASE, "case_id": "SEC-CORS"}, headers={**INTAKE, "Origin": TICKETS})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == TICKETS
    refused = cors_client.post("/v1/triage", json={**CASE, "case_id": "SEC-CORS-2"}, headers={**INTAKE, "Origin": EVIL})
    assert "access-control-allow-origin" not in {k.lower() for k in refused.headers}


def test_cors_origins_come_from_the_environment_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_CORS_ORIGINS", f" {TICKETS}/ ,http://localhost:8080")
    assert Settings().cors_origins == [TICKETS, "http://localhost:8080"]
    monkeypatch.delenv("TRIAGE_CORS_ORIGINS")
    assert Settings().cors_origins == []


@pytest.mark.parametrize("origin", ["*", "https://*.example.com", "tickets.example.gov.cn", f"{TICKETS}/path"])
def test_wildcards_and_non_origins_are_refused(origin: str) -> None:
    with pytest.raises(ValidationError, match="not scheme://host"):
        Settings(cors_origins=origin)  # type: ignore[arg-type]


# -- headers ----------------------------------------------------------------------------------------
def test_api_answers_are_nosniff_and_not_cached(client: TestClient) -> None:
    answers = {
        "triage 200": client.post("/v1/triage", json={**CASE, "case_id": "SEC-H"}, headers=INTAKE),
        "422": client.post("/v1/triage", json={"case_id": "x"}, headers=INTAKE),
        "401": client.get("/v1/alerts"),
        "403": client.get("/v1/alerts", headers=INTAKE),
        "404": client.get("/v1/alerts/nope", headers=REVIEWER),
        "413": client.post("/v1/triage", content=b"x" * 10, headers={**INTAKE, "content-length": str(10**10)}),
    }
    for what, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", what
        assert answer.headers["cache-control"] == "no-store", what
    assert [a.status_code for a in answers.values()] == [200, 422, 401, 403, 404, 413]
    assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"


def test_pages_keep_their_stricter_headers(client: TestClient) -> None:
    """Every page answer, the login form, a redirect to it, an error page and static files alike."""
    answers = {
        "login": client.get("/review/login"),
        "redirect": client.get("/review", follow_redirects=False),
        "401 page": client.get("/review", headers={"X-API-Key": "not-a-configured-key-at-all"}),
        "403 page": client.get("/dashboard", headers=INTAKE),
        "404 page": client.get("/review/cases/NO-SUCH-CASE", headers=REVIEWER),
        "static": client.get("/review/static/app.css"),
    }
    for what, answer in answers.items():
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, what
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, what
        assert answer.headers["x-content-type-options"] == "nosniff", what
        assert answer.headers["referrer-policy"] == "no-referrer", what
        assert answer.headers["x-frame-options"] == "DENY", what
    assert [a.status_code for a in answers.values()] == [200, 303, 401, 403, 404, 200]
    assert answers["login"].headers["cache-control"] == "no-store"


# -- keys and sessions ------------------------------------------------------------------------------
def test_keys_are_never_echoed(client: TestClient) -> None:
    wrong = "wrong-key-0123456789-do-not-echo"
    answers = [
        client.post("/v1/triage", json={**CASE, "case_id": "SEC-K"}, headers=INTAKE),
        client.get("/v1/model", headers=REVIEWER),
        client.get("/v1/alerts", headers={"X-API-Key": wrong}),
        client.get("/v1/alerts", headers=INTAKE),
        client.get("/review", headers=REVIEWER),
        client.get("/openapi.json"),
    ]
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/login").text)
    assert token
    for key in (wrong, INTAKE_KEY):  # a refused login re-renders the form: never with the key in it
        answers.append(client.post("/review/login", data={"csrf_token": token.group(1), "api_key": key}))
    for answer in answers:
        seen = answer.text + "".join(f"{k}: {v}" for k, v in answer.headers.items())
        for key in (*ALL_KEYS, wrong):
            assert key not in seen, (answer.request.url, answer.status_code)
    assert [a.status_code for a in answers[-2:]] == [401, 403]


def test_the_session_cookie_is_httponly_strict_and_holds_no_key(demo_bundle_dir: Path, tmp_path: Path) -> None:
    app = create_app(Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 't.db'}"))
    with TestClient(app) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/review/login").text)
        assert token
        answer = c.post("/review/login", data={"csrf_token": token.group(1), "api_key": REVIEWER_KEY},
                        follow_redirects=False)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    flags = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert "httponly" in flags and "samesite=strict" in flags
    assert any(f.startswith("max-age=") and int(f.split("=")[1]) <= 8 * 3600 for f in flags)
    assert REVIEWER_KEY not in cookie


def test_no_key_and_a_wrong_key_are_401_a_wrong_role_is_403(client: TestClient) -> None:
    missing = client.post("/v1/triage", json=CASE)
    wrong = client.post("/v1/triage", json=CASE, headers={"X-API-Key": "not-a-configured-key-at-all"})
    role = client.post("/v1/triage", json=CASE, headers=REVIEWER)
    assert (missing.status_code, wrong.status_code, role.status_code) == (401, 401, 403)
    assert missing.headers["www-authenticate"] == wrong.headers["www-authenticate"] == "X-API-Key"
    assert "www-authenticate" not in role.headers
    assert "required" in missing.json()["detail"] and "not valid" in wrong.json()["detail"]
    assert role.json()["detail"] == "the reviewer role may not do this; it needs one of: intake, admin"


# -- constant-time comparison ------------------------------------------------------------------------
@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(serving.auth.hmac, "compare_digest", recording)
    return calls


@pytest.mark.parametrize("presented", [INTAKE_KEY, ADMIN_KEY, "not-a-configured-key-at-all"])
def test_every_configured_digest_is_compared_with_compare_digest(
    presented: str, compare_calls: list[tuple[bytes, bytes]]
) -> None:
    """No early exit at the first match or the first byte: the time does not tell which key was right."""
    ring = KeyRing.from_spec(API_KEYS)
    ring.authenticate(presented)
    assert sorted(stored for _, stored in compare_calls) == sorted(ring.digests())
    assert {p for p, _ in compare_calls} == {serving.auth.key_digest(presented)}


def test_requests_go_through_compare_digest(client: TestClient, compare_calls: list[tuple[bytes, bytes]]) -> None:
    """Once per configured key and request (other callers of hmac.compare_digest, e.g. cookie signing, aside)."""
    ring: KeyRing = context_of(client.app).keyring
    assert client.get("/v1/model", headers=REVIEWER).status_code == 200
    against_keys = [stored for _, stored in compare_calls if stored in ring.digests()]
    assert sorted(against_keys) == sorted(ring.digests())
