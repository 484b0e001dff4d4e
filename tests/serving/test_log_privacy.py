"""No case text, personal data or API key in any log line, on the happy paths and the error paths.

Cases carry a phone number, an ID-card number, a person's name and a phrase no log message would
contain by chance; notes carry them too. Two runs: the app in process with every logger at DEBUG
(SQLAlchemy's at INFO: its DEBUG prints result rows, the database's content, by design), and the
production entry point `triage serve` in a subprocess at DEBUG with uvicorn's access log, whose
whole output is read.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.exc import IntegrityError

from serving.app import create_app
from serving.settings import Settings
from store.engine import make_engine
from tests.keys import ADMIN, ADMIN_KEY, API_KEYS, INTAKE, INTAKE_KEY, REVIEWER, REVIEWER_KEY

PHONE = "13812345678"
ID_CARD = "430102199001011234"
NAME = "欧阳建国"
PHRASE = "紫藤花园七号楼地下车库水管爆裂"
REPORTER = "REPORTER-PRIVATE-4417"
NOTE_PHRASE = "审核员备注紫藤花园漏水情况属实"
TITLE = f"{PHRASE}，无人处理"
BODY = f"我是{NAME}，住在紫藤花园小区七号楼，{PHRASE}已经三天，电话{PHONE}，身份证{ID_CARD}，请尽快派人维修。"
SECRETS = (PHONE, ID_CARD, NAME, PHRASE, REPORTER, NOTE_PHRASE, INTAKE_KEY, REVIEWER_KEY, ADMIN_KEY)
WRONG_KEY = "wrong-key-PRIVATE-0123456789abcdef"


def case(case_id: str, reporter: str = REPORTER) -> dict[str, str]:
    return {"case_id": case_id, "title": TITLE, "body": BODY, "reporter_id": reporter}


class Capture(logging.Handler):
    """Every record, formatted with its traceback, as a deployment's handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if not logger.propagate:
            logger.addHandler(handler)
    for logger in loggers:  # SQL echo with (hidden) parameters; DEBUG would add result rows
        if logger.name.startswith("sqlalchemy.engine"):
            logger.setLevel(logging.INFO)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level, _ in saved:
            logger.setLevel(level)
            logger.removeHandler(handler)


def assert_private(log: str) -> None:
    leaked = [s for s in (*SECRETS, WRONG_KEY) if s in log]
    assert not leaked, f"in the log: {leaked}"


def log_in(client: TestClient, key: str) -> httpx.Response:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/review/login").text)
    assert token
    return client.post("/review/login", data={"csrf_token": token.group(1), "api_key": key}, follow_redirects=False)


def test_no_case_text_personal_data_or_key_in_the_logs_of_a_full_run(
    demo_bundle_dir: Path, tmp_path: Path, captured: Capture
) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                        log_level="DEBUG", max_body_bytes=64_000, max_text_chars=1_000)
    with TestClient(create_app(settings)) as client:
        statuses: dict[str, int] = {}
        # triage: single, resubmitted, re-scored, batch, and a burst from three people (a hot-issue alert)
        statuses["single"] = client.post("/v1/triage", json=case("PRIV-1"), headers=INTAKE).status_code
        statuses["again"] = client.post("/v1/triage", json=case("PRIV-1"), headers=INTAKE).status_code
        statuses["rescore"] = client.post("/v1/triage?rescore=true", json=case("PRIV-1"), headers=INTAKE).status_code
        batch = {"cases": [case(f"PRIV-B{i}", f"{REPORTER}-{i}") for i in range(4)]}
        statuses["batch"] = client.post("/v1/triage/batch", json=batch, headers=INTAKE).status_code
        alerts = client.get("/v1/alerts", headers=REVIEWER).json()["alerts"]
        assert alerts, "the burst raised no alert: the alert path was not exercised"
        statuses["alert"] = client.get(f"/v1/alerts/{alerts[0]['id']}", headers=REVIEWER).status_code
        # reviews through the API, the queue, the case
        statuses["queue"] = client.get("/v1/review-queue", headers=REVIEWER).status_code
        statuses["case"] = client.get("/v1/cases/PRIV-1", headers=REVIEWER).status_code
        statuses["review"] = client.post("/v1/cases/PRIV-1/reviews", headers=REVIEWER, json={
            "action": "change", "level": "red", "note": f"{NOTE_PHRASE}，{NAME}电话{PHONE}"}).status_code
        statuses["report"] = client.get("/v1/reports/agreement", headers=ADMIN).status_code
        # the pages: a refused login, a login, the queue, the case, a review by form, the dashboard
        statuses["bad login"] = log_in(client, WRONG_KEY).status_code
        statuses["login"] = log_in(client, REVIEWER_KEY).status_code
        statuses["page queue"] = client.get("/review").status_code
        page = client.get("/review/cases/PRIV-B0")
        statuses["page case"] = page.status_code
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        prediction = re.search(r'name="prediction_id" value="(\d+)"', page.text)
        assert token and prediction
        statuses["page review"] = client.post("/review/cases/PRIV-B0/reviews", follow_redirects=False, data={
            "csrf_token": token.group(1), "prediction_id": prediction.group(1), "action": "change",
            "level": "red", "note": f"{NOTE_PHRASE}，{ID_CARD}"}).status_code
        statuses["dashboard"] = client.get("/dashboard").status_code
        # error paths: invalid input that carries the text, a wrong key, a body over the limit (sized and chunked)
        statuses["422 extra"] = client.post("/v1/triage", headers=INTAKE,
                                            json={**case("PRIV-X"), "phone": PHONE}).status_code
        statuses["422 long"] = client.post("/v1/triage", headers=INTAKE,
                                           json={**case("PRIV-L"), "body": BODY * 20}).status_code
        statuses["422 review"] = client.post("/v1/cases/PRIV-1/reviews", headers=REVIEWER,
                                             json={"action": "change", "note": NOTE_PHRASE}).status_code
        statuses["401"] = client.post("/v1/triage", json=case("PRIV-K"), headers={"X-API-Key": WRONG_KEY}).status_code
        big = ("{" + f'"case_id": "PRIV-BIG", "title": "{TITLE}", "body": "{BODY * 400}"' + "}").encode()
        statuses["413"] = client.post("/v1/triage", content=big, headers={**INTAKE, "content-type": "application/json"}
                                      ).status_code
        statuses["413 chunked"] = client.post("/v1/triage", content=iter([big[:1000], big[1000:]]), headers={
            **INTAKE, "content-type": "application/json"}).status_code
    assert statuses == {
        "single": 200, "again": 200, "rescore": 200, "batch": 200, "alert": 200, "queue": 200, "case": 200,
        "review": 201, "report": 200, "bad login": 401, "login": 303, "page queue": 200, "page case": 200,
        "page review": 303, "dashboard": 200, "422 extra": 422, "422 long": 422, "422 review": 422, "401": 401,
        "413": 413, "413 chunked": 413,
    }
    log = "\n".join(captured.lines)
    assert "PRIV-1" in log and "sqlalchemy.engine" in log  # the capture saw the service and the SQL echo
    assert_private(log)


def test_database_errors_do_not_carry_the_statement_parameters(tmp_path: Path) -> None:
    """An error from the store (logged with its traceback when a request fails) names the statement, not the text."""
    engine = make_engine(f"sqlite:///{tmp_path / 'errors.db'}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("body", String))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table).values(id=1, body=BODY))
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(insert(table).values(id=1, body=BODY))
    assert "INSERT INTO t" in str(caught.value)
    assert PHRASE not in str(caught.value) and PHONE not in str(caught.value)
    engine.dispose()


#: `triage serve` (serving.app.run): logging configured at TRIAGE_LOG_LEVEL, uvicorn's access log on.
SERVE = "import sys; from serving.app import run; run(port=int(sys.argv[1]), model_uri=sys.argv[2])"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_served_process_logs_no_case_text_at_debug_with_access_logs(demo_bundle_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "TRIAGE_API_KEYS": API_KEYS, "TRIAGE_LOG_LEVEL": "DEBUG", "TRIAGE_SPOOL_DIR": str(tmp_path),
           "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}", "TRIAGE_MAX_BODY_BYTES": "64000"}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(port), str(demo_bundle_dir)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")[-2000:]
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=30) as client:
            codes = [
                client.post("/v1/triage", json=case("SRV-1"), headers=INTAKE).status_code,
                client.post("/v1/triage/batch", json={"cases": [case("SRV-2")]}, headers=INTAKE).status_code,
                client.post("/v1/cases/SRV-1/reviews", headers=REVIEWER,
                            json={"action": "change", "level": "red", "note": NOTE_PHRASE}).status_code,
                client.post("/v1/triage", json={**case("SRV-3"), "phone": PHONE}, headers=INTAKE).status_code,
                client.post("/v1/triage", json={**case("SRV-4"), "body": BODY * 400}, headers=INTAKE).status_code,
                client.post("/v1/triage", json=case("SRV-5"), headers={"X-API-Key": WRONG_KEY}).status_code,
                client.get("/review", headers=REVIEWER).status_code,
            ]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert codes == [200, 200, 201, 422, 413, 401, 200]
    log = log_path.read_text(errors="replace")
    assert '"POST /v1/triage HTTP/1.1" 200' in log and "SRV-1" in log  # access log and the service's own log
    assert_private(log)
