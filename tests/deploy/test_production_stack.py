"""The production layout of deploy/, run for real on this machine (issue 6, item 4).

An MLflow tracking server with a PostgreSQL backend store and proxied artefacts (the options of
deploy/systemd/mlflow.service), `triage train` registering the champion through it as a training host
would (`TRIAGE_MLFLOW_ARTIFACTS=mlflow-artifacts:///…`), and two API replicas on one PostgreSQL audit
store loading `models:/grievance-triage@champion` from that server. Each piece is in a throw-away
PostgreSQL schema, so the `test` database is left as it was. What only a real host can show (systemd
as PID 1, nginx, TLS) is checked statically in test_deploy_files.py and deploy/check.sh.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from store.scratch import admin_engine, create_schema, drop_schema, schema_url
from tests.keys import API_KEYS, INTAKE
from tests.serving.uvicorn_servers import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PREFIX = f"triage_stack_{uuid.uuid4().hex[:6]}_"
MLFLOW_UNIT = ROOT / "deploy" / "systemd" / "mlflow.service"
DEMO_DATA = ROOT / "training" / "demo_data" / "grievances.csv"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    """(MLflow backend URL, audit store URL), each a fresh PostgreSQL schema."""
    admin, reason = admin_engine(POSTGRES_URL)
    if admin is None:
        pytest.skip(f"PostgreSQL unreachable ({reason}); the production-stack test needs it")
    made = [create_schema(admin, PREFIX) for _ in range(2)]
    try:
        yield schema_url(POSTGRES_URL, made[0]), schema_url(POSTGRES_URL, made[1])
    finally:
        for schema in made:
            drop_schema(admin, schema)
        admin.dispose()


def unit_server_options() -> list[str]:
    """The `mlflow server` options of the unit's ExecStart, minus host/port/workers (chosen here)."""
    text = MLFLOW_UNIT.read_text(encoding="utf-8").replace("\\\n", " ")
    command = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    words = shlex.split(command.removeprefix("ExecStart="))
    keep, skip = [], False
    for word in words[2:]:  # after ".../mlflow server"
        if skip:
            skip = False
            continue
        if word in ("--host", "--port", "--workers"):
            skip = True
            continue
        keep.append(word)
    return keep


@pytest.fixture
def mlflow_server(schemas: tuple[str, str], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    artifacts = tmp_path / "mlflow-artifacts"
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": schemas[0],
        "MLFLOW_ARTIFACTS_DESTINATION": str(artifacts),
        "MLFLOW_SERVER_ALLOWED_HOSTS": f"127.0.0.1:{port},localhost:{port}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    log = tmp_path / "mlflow.log"
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", *unit_server_options()]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"mlflow server exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"mlflow server not up:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_replicas_load_the_champion_from_an_mlflow_server_on_postgresql(
    schemas: tuple[str, str], mlflow_server: str, tmp_path: Path
) -> None:
    training_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "TRIAGE_MLFLOW_ARTIFACTS": "mlflow-artifacts:///grievance-triage",
    }
    trained = subprocess.run(
        [sys.executable, "-m", "command.cli", "train", "--data", str(DEMO_DATA)],
        cwd=tmp_path, env=training_env, capture_output=True, text=True, timeout=900,
    )
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    # The backend store is PostgreSQL (MLflow's tables in its schema), the artefacts are the server's.
    backend = create_engine(schemas[0], poolclass=NullPool)
    try:
        tables = set(inspect(backend).get_table_names())
    finally:
        backend.dispose()
    assert {"experiments", "runs", "registered_models", "model_versions"} <= tables
    assert list((tmp_path / "mlflow-artifacts").rglob("MLmodel")), "the model's artefacts are not on the server"
    assert not (tmp_path / "mlartifacts").exists()

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "TRIAGE_MODEL_URI": "models:/grievance-triage@champion",
        "TRIAGE_DATABASE_URL": schemas[1],
        "TRIAGE_API_KEYS": API_KEYS,
        "TRIAGE_LOG_LEVEL": "WARNING",
    }
    replicas = [Server({**env, "TRIAGE_SPOOL_DIR": str(tmp_path / f"spool-{k}")}, tmp_path / f"replica-{k}.log")
                for k in range(2)]
    try:
        for replica in replicas:
            replica.wait_ready()
        for k, replica in enumerate(replicas):
            model = httpx.get(f"{replica.url}/v1/model", headers=INTAKE, timeout=30).json()
            assert model["version"] == "1" and model["alias"] == "champion", model
            answer = httpx.post(f"{replica.url}/v1/triage", headers=INTAKE, timeout=60, json={
                "case_id": f"STACK-{k}", "title": "青林路夜间施工噪音扰民", "body": "工地每天夜里十二点后还在打桩。",
            })
            assert answer.status_code == 200 and answer.json()["prediction_id"] is not None, answer.text
    finally:
        for replica in replicas:
            replica.stop()
