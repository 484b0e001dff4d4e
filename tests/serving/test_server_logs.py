"""The service's own log lines reach the journal under a bare uvicorn, as the systemd unit starts it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.keys import INTAKE
from tests.serving.uvicorn_servers import Server

STAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}"


def test_serving_info_lines_and_warnings_carry_a_time_under_the_units_command(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    # The unit's uvicorn options (deploy/systemd/grievance-triage@.service): no --log-level, no log config.
    server = Server({**server_env, "TRIAGE_LOG_LEVEL": "INFO"}, log,
                    uvicorn_args=("--workers", "1", "--proxy-headers", "--no-server-header"))
    try:
        server.wait_ready()
        answer = httpx.post(f"{server.url}/v1/triage", headers=INTAKE, timeout=30,
                            json={"case_id": "LOG-1", "title": "路灯不亮", "body": "小区门口路灯坏了"})
        assert answer.status_code == 200
        wrong = httpx.get(f"{server.url}/v1/model", headers={"X-API-Key": "wrong-key-0123456789abcdef-x"})
        assert wrong.status_code == 401
    finally:
        server.stop()
    text = log.read_text(encoding="utf-8")
    serving_info = re.findall(rf"^{STAMP} INFO serving\.\S+: .*$", text, flags=re.MULTILINE)
    assert serving_info, text[-2000:]
    assert any("restored" in line or "model" in line for line in serving_info)
    # Every line the project's loggers wrote has its time.
    own = [line for line in text.splitlines() if re.search(r"\b(serving|models|training|features)\.\w", line)
           and re.search(r"\b(INFO|WARNING|ERROR)\b", line)]
    assert own and all(re.match(STAMP, line) for line in own), [line for line in own if not re.match(STAMP, line)]
    assert "小区门口路灯坏了" not in text  # case text never in the log
