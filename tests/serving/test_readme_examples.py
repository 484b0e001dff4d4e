"""Every API example in README.md runs verbatim against the demo `make run` serves (issue 14, item 13).

The served demo is built the way `make run` builds it: `triage train` on the demo file with the
project's config into an MLflow store (a temporary one here), `command.demo_seed` into an empty audit
store, then uvicorn; the keys carry the demo names (`serving.demo_keys.DEMO_NAMES`). Each `curl` line
of a README bash block then runs in bash, in README order, with only the address changed to the test
server's, and its output is compared with the JSON block that follows on the fields the README shows:
a documented object may leave keys out and a documented list may stop early (the README says where it
cuts), values that differ on every run (ids, times) are only checked for presence, and probabilities
within 0.02. Other commands of those blocks (`triage train`, ...) are tested elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.auth import Role
from serving.demo_keys import DEMO_DEPARTMENT, DEMO_NAMES
from tests.keys import ADMIN_KEY, BUILDING_KEY, INTAKE_KEY, REVIEWER_KEY
from tests.serving.uvicorn_servers import Server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8000"
#: Values that differ on every run: only their presence (and null-ness) is compared.
VOLATILE = {"prediction_id", "stored_at", "received_at", "created_at", "id", "week", "load_seconds", "reloaded_at",
            "issued_at", "updated_at", "acknowledge_due", "resolve_due", "acknowledged_at", "closed_at", "at",
            "due", "event_id", "occurred_at", "next_attempt_at", "delivered_at"}
FLOAT_TOLERANCE = 0.02

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def readme_examples(text: str) -> list[tuple[int, list[str], list[Any]]]:
    """(line, curl commands, documented JSON values) of each bash block with a curl to the demo server;
    the JSON values are those of the ```json block right after it (none: nothing documented)."""
    blocks = [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.DOTALL)
    ]
    examples = []
    for i, (lang, body, line) in enumerate(blocks):
        if lang != "bash" or "curl -s" not in body or README_URL not in body:
            continue
        commands = [c for c in shell_commands(body) if c.startswith("curl ") and README_URL in c]
        documented: list[Any] = []
        if i + 1 < len(blocks) and blocks[i + 1][0] == "json":
            documented = json_values(blocks[i + 1][1])
        examples.append((line, commands, documented))
    return examples


def shell_commands(body: str) -> list[str]:
    """The block's commands: a line continues after a trailing backslash or inside a quoted argument
    (a JSON body written over several lines)."""
    commands: list[str] = []
    current = ""
    for line in body.split("\n"):
        current = f"{current}\n{line}" if current else line
        if current.endswith("\\"):
            continue  # kept as written: bash joins the lines
        if current.count("'") % 2 == 0:
            commands.append(current.strip())
            current = ""
    return [c for c in commands if c]


def json_values(text: str) -> list[Any]:
    """The JSON values of a block, one after another (a block may show one answer per command)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def differences(documented: Any, actual: Any, path: str = "$") -> list[str]:
    """Where `actual` does not show what `documented` says (see the module docstring for the rules)."""
    key = path.rsplit(".", 1)[-1]
    if key in VOLATILE and not isinstance(documented, dict | list):
        return (
            [] if (documented is None) == (actual is None) else [f"{path}: documented {documented!r}, got {actual!r}"]
        )
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{path}: documented an object, got {actual!r}"]
        out = []
        for k, v in documented.items():
            if k not in actual:
                out.append(f"{path}.{k}: documented, missing")
            else:
                out += differences(v, actual[k], f"{path}.{k}")
        return out
    if isinstance(documented, list):
        if not isinstance(actual, list) or len(actual) < len(documented):
            return [f"{path}: documented {len(documented)} items, got {actual!r}"[:300]]
        return [d for i, v in enumerate(documented) for d in differences(v, actual[i], f"{path}[{i}]")]
    if isinstance(documented, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        return [] if abs(documented - actual) <= FLOAT_TOLERANCE else [f"{path}: documented {documented}, got {actual}"]
    return [] if documented == actual else [f"{path}: documented {documented!r}, got {actual!r}"]


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    home = tmp_path_factory.mktemp("readme-demo")
    keys = {Role.intake: INTAKE_KEY, Role.reviewer: REVIEWER_KEY, Role.admin: ADMIN_KEY, Role.department: BUILDING_KEY}
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "TRIAGE_MLFLOW_ARTIFACTS": str(home / "art"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TRIAGE_MODEL_URI": "models:/grievance-triage@champion",
        "TRIAGE_DATABASE_URL": f"sqlite:///{home}/var/triage.db",
        "TRIAGE_SPOOL_DIR": str(home / "var" / "spool"),
        "TRIAGE_API_KEYS": ",".join(
            f"{DEMO_NAMES[role]}:{role.value}:{key}" + (f":{DEMO_DEPARTMENT}" if role is Role.department else "")
            for role, key in keys.items()
        ),
        "TRIAGE_LOG_LEVEL": "WARNING",
    }
    env.pop("MLFLOW_REGISTRY_URI", None)
    for step in (
        [
            "-m",
            "command.cli",
            "train",
            "--data",
            str(ROOT / "training/demo_data/grievances.csv"),
            "--config",
            str(ROOT / "training/defaults/router.yaml"),
        ],
        ["-m", "command.demo_seed"],
    ):
        done = subprocess.run([sys.executable, *step], cwd=home, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    server = Server(env, home / "server.log")
    try:
        server.wait_ready()
        yield server.url, {"INTAKE_KEY": INTAKE_KEY, "REVIEWER_KEY": REVIEWER_KEY, "ADMIN_KEY": ADMIN_KEY,
                           "DEPARTMENT_KEY": BUILDING_KEY}
    finally:
        server.stop()


def test_the_readme_documents_api_examples_with_their_answers() -> None:
    examples = readme_examples(README.read_text(encoding="utf-8"))
    assert len(examples) >= 8
    assert sum(len(commands) for _, commands, _ in examples) >= 12
    assert all(documented for _, _, documented in examples[:4])


def test_the_comparison_catches_a_wrong_documented_value() -> None:
    assert (
        differences({"a": {"label": "x", "p": 0.5}, "ids": [1]}, {"a": {"label": "x", "p": 0.51}, "ids": [1, 2]}) == []
    )
    assert differences({"a": {"label": "x"}}, {"a": {"label": "y"}}) == ["$.a.label: documented 'x', got 'y'"]
    assert differences({"p": 0.5}, {"p": 0.6}) == ["$.p: documented 0.5, got 0.6"]
    assert differences({"hot_issue": None}, {"hot_issue": {"id": "h"}})
    assert differences({"prediction_id": 3}, {"prediction_id": 9}) == []
    assert differences({"prediction_id": 3}, {"prediction_id": None})


def test_every_readme_api_example_runs_verbatim_and_answers_as_documented(
    served_demo: tuple[str, dict[str, str]],
) -> None:
    url, keys = served_demo
    env = {**os.environ, **keys}
    problems = []
    for line, commands, documented in readme_examples(README.read_text(encoding="utf-8")):
        # Warnings are issued by a background round every half second: a block that only reads may be asked
        # again for a few seconds until what the examples before it posted has been issued.
        read_only = not any(re.search(r"-X\s*(POST|PUT|PATCH|DELETE)", command) for command in commands)
        for _attempt in range(10 if read_only else 1):
            answers = []
            for command in commands:
                done = subprocess.run(["bash", "-c", command.replace(README_URL, url)], env=env, capture_output=True,
                                      text=True, timeout=60)
                assert done.returncode == 0, f"README line {line}: {command[:80]} exited {done.returncode}"
                answers.append(json.loads(done.stdout))
            # A block may document the answers of its last commands only (the others' are in the text).
            found = [f"README line {line}: {d}"
                     for expected, actual in zip(documented, answers[len(answers) - len(documented) :], strict=True)
                     for d in differences(expected, actual)]
            if not found:
                break
            time.sleep(0.5)
        problems += found
    assert problems == []
