"""API keys and roles: parsing, constant-time lookup, and every non-public route refusing strangers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from serving.app import create_app
from serving.auth import ApiKeyError, KeyRing, Role, key_digest, new_key, parse_api_keys
from serving.demo_keys import ensure_demo_keys
from serving.settings import Settings
from serving.web.pages import PAGE_PREFIXES
from serving.web.session import SessionSecretError
from tests.keys import (
    ADMIN,
    ADMIN_KEY,
    API_KEYS,
    BUILDING,
    BUILDING_KEY,
    INTAKE,
    INTAKE_KEY,
    REVIEWER,
    REVIEWER_KEY,
)

PUBLIC = {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def test_keys_parse_into_names_roles_and_digests_only() -> None:
    keys = parse_api_keys(f" a:intake:{INTAKE_KEY} , b:admin:sha256:{key_digest(ADMIN_KEY).hex()} ,")
    assert [(k.name, k.role) for k in keys] == [("a", Role.intake), ("b", Role.admin)]
    assert keys[0].digest == key_digest(INTAKE_KEY)
    assert INTAKE_KEY not in repr(keys)
    ring = KeyRing(keys)
    assert ring.authenticate(INTAKE_KEY).name == "a"
    assert ring.authenticate(ADMIN_KEY).role is Role.admin
    assert ring.authenticate(REVIEWER_KEY) is None
    assert ring.authenticate("") is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a:intake", "entry 1: expected name:role:key"),
        (f"a:boss:{INTAKE_KEY}", "entry 1 ('a'): unknown role 'boss'"),
        ("a:intake:short", "shorter than 16"),
        (f"a:intake:{INTAKE_KEY},a:admin:{ADMIN_KEY}", "entry 2 ('a'): the name is used"),
        (f"a:intake:{INTAKE_KEY},b:admin:{INTAKE_KEY}", "entry 2 ('b'): the same key"),
        ("a:admin:sha256:xyz", "64 hex digits"),
        (f"a b:admin:{ADMIN_KEY}", "the name must be"),
    ],
)
def test_bad_key_entries_are_refused_naming_the_entry_not_the_key(spec: str, message: str) -> None:
    with pytest.raises(ApiKeyError, match=re.escape(message)) as caught:
        parse_api_keys(spec)
    assert INTAKE_KEY not in str(caught.value) and ADMIN_KEY not in str(caught.value)


def test_a_bad_key_configuration_stops_the_app_from_being_built(demo_bundle_dir: Path) -> None:
    with pytest.raises(ApiKeyError, match="unknown role"):
        create_app(Settings(model_uri=str(demo_bundle_dir), api_keys=f"x:root:{ADMIN_KEY}"))


@pytest.fixture(scope="module")
def app_client(demo_bundle_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_uri=str(demo_bundle_dir)))) as client:
        yield client


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, including those of included routers (kept behind a wrapper by FastAPI)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)


def _protected_routes(client: TestClient) -> list[APIRoute]:
    routes = [r for r in _api_routes(client.app.routes) if r.path not in PUBLIC]
    assert len(routes) >= 5, "the route table should hold the triage, alert and model routes"
    return routes


def _call(client: TestClient, route: APIRoute, headers: dict[str, str]) -> int:
    path = route.path.replace("{", "").replace("}", "")  # any value: auth is checked before lookup
    method = sorted(route.methods - {"HEAD"})[0]
    return client.request(method, path, headers=headers, json={}, follow_redirects=False).status_code


def _required_roles(route: APIRoute) -> frozenset[Role]:
    roles: set[Role] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        roles |= set(getattr(dependency.call, "roles", ()))
        stack.extend(dependency.dependencies)
    return frozenset(roles)


def test_every_non_public_route_refuses_a_missing_or_wrong_key(app_client: TestClient) -> None:
    for i, route in enumerate(_protected_routes(app_client)):
        # Each route's wrong key from its own address: the failed-key limit (20 a minute per client) is
        # tested elsewhere, and must not turn these answers, or the next tests' valid keys, into 429s.
        prober = TestClient(app_client.app, client=(f"198.51.100.{i % 250}", 50000))
        for headers in ({}, {"X-API-Key": "not-a-configured-key-at-all"}):
            status = _call(prober, route, headers)
            # Web pages send people to the login form instead of answering 401.
            assert status == 401 or (status == 303 and route.path.startswith(PAGE_PREFIXES)), (
                route.path, headers, status,
            )


def test_every_role_restricted_route_refuses_the_other_roles(app_client: TestClient) -> None:
    keys = {Role.intake: INTAKE, Role.reviewer: REVIEWER, Role.admin: ADMIN, Role.department: BUILDING}
    checked = 0
    for route in _protected_routes(app_client):
        allowed = _required_roles(route)
        if not allowed:
            continue
        assert Role.admin in allowed, route.path
        for role, headers in keys.items():
            status = _call(app_client, route, headers)
            if role in allowed:
                assert status not in (401, 403), (route.path, role, status)
            else:
                assert status == 403, (route.path, role, status)
                checked += 1
    assert checked >= 3


def test_triage_needs_intake_and_alerts_need_reviewer(app_client: TestClient) -> None:
    case = {"case_id": "AUTH-1", "title": "小区垃圾无人清运", "body": "垃圾堆了一周"}
    assert app_client.post("/v1/triage", json=case).status_code == 401
    assert app_client.post("/v1/triage", json=case, headers=REVIEWER).status_code == 403
    assert app_client.post("/v1/triage", json=case, headers=INTAKE).status_code == 200
    assert app_client.get("/v1/alerts", headers=INTAKE).status_code == 403
    assert app_client.get("/v1/alerts", headers=REVIEWER).status_code == 200
    denied = app_client.get("/v1/alerts", headers=INTAKE).json()
    assert "intake role may not" in denied["detail"]
    missing = app_client.get("/v1/model")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "X-API-Key"
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert app_client.get(path).status_code == 200


def test_without_configured_keys_everything_but_health_is_closed(
    demo_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIAGE_API_KEYS")
    with TestClient(create_app(Settings(model_uri=str(demo_bundle_dir)))) as client:
        answer = client.get("/v1/model", headers=ADMIN)
        assert answer.status_code == 401
        assert "TRIAGE_API_KEYS" in answer.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_the_openapi_schema_documents_the_key_header(app_client: TestClient) -> None:
    schema = app_client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    triage = schema["paths"]["/v1/triage"]["post"]
    assert {"401", "403"} <= set(triage["responses"])


def test_demo_keys_are_made_once_private_and_accepted(tmp_path: Path) -> None:
    path = tmp_path / "var" / "demo-api-keys.env"
    first = ensure_demo_keys(path)
    assert set(first) == set(Role)
    assert path.stat().st_mode & 0o077 == 0
    assert ensure_demo_keys(path) == first
    spec = path.read_text(encoding="utf-8").split("=", 1)[1].strip()
    ring = KeyRing.from_spec(spec)
    assert ring.authenticate(first[Role.reviewer][1]).role is Role.reviewer
    department = ring.authenticate(first[Role.department][1])
    assert department is not None and department.department == "城乡建设"


def test_an_older_demo_key_file_keeps_its_keys_and_gains_a_department_key(tmp_path: Path) -> None:
    path = tmp_path / "demo-api-keys.env"
    path.write_text(f"TRIAGE_API_KEYS=old-reviewer:reviewer:{REVIEWER_KEY}\n", encoding="utf-8")
    keys = ensure_demo_keys(path)
    assert keys[Role.reviewer] == ("old-reviewer", REVIEWER_KEY) and Role.department in keys


def test_department_keys_carry_their_department() -> None:
    ring = KeyRing.from_spec(API_KEYS)
    principal = ring.authenticate(BUILDING_KEY)
    assert principal is not None and principal.role is Role.department and principal.department == "城乡建设"
    assert ring.authenticate(REVIEWER_KEY).department is None
    digest = hashlib.sha256(BUILDING_KEY.encode()).hexdigest()
    by_digest = KeyRing.from_spec(f"b:department:sha256:{digest}:城乡建设").authenticate(BUILDING_KEY)
    assert by_digest is not None and by_digest.department == "城乡建设"
    for spec in (f"b:department:{BUILDING_KEY}", f"b:department:{BUILDING_KEY}:", "b:department::城乡建设"):
        with pytest.raises(ApiKeyError, match="entry 1 \\('b'\\): a department key is name:department:key"):
            parse_api_keys(spec)


@pytest.mark.parametrize("weak", ["aaaaaaaaaaaaaaaa", "password12345678", "1234567890123456", "qwertyuiopasdfgh"])
def test_a_guessable_key_is_refused_at_start_up(weak: str) -> None:
    with pytest.raises(ApiKeyError, match="easy to guess") as caught:
        parse_api_keys(f"ops:admin:{weak}")
    assert weak not in str(caught.value)


DIGEST_KEYS = f"ops:admin:sha256:{key_digest(ADMIN_KEY).hex()}"


@pytest.mark.parametrize(
    ("keys", "secret", "message"),
    [
        (DIGEST_KEYS, None, "must be set when keys are given as sha256 digests"),
        (API_KEYS, "x", "shorter than 32 bytes"),
        (API_KEYS, "REPLACE_WITH_A_LONG_RANDOM_SECRET", "placeholder"),
        (API_KEYS, "REPLACE_WITH_A_LONG_RANDOM_SECRET_OF_48_CHARACTERS", "placeholder"),
    ],
)
def test_an_unusable_session_secret_stops_the_app(demo_bundle_dir: Path, keys: str, secret: str | None,
                                                  message: str) -> None:
    with pytest.raises(SessionSecretError, match=message) as caught:
        create_app(Settings(model_uri=str(demo_bundle_dir), api_keys=keys, session_secret=secret))
    assert secret is None or secret not in str(caught.value)


def test_digest_keys_with_a_real_secret_start_and_log_in(demo_bundle_dir: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), api_keys=DIGEST_KEYS, session_secret=new_key())
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/model", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
