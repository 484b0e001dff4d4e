"""A live server and a headless Debian Chromium for the reviewer-page browser tests.

The app runs under uvicorn in a background thread on 127.0.0.1 (a free port), with its own SQLite
store and the demo bundle (a router without a risk model). Red and yellow cases are stored through the
store with cue reasons from the real lexicon (`tests.browser.seed`); two more are triaged through the
API with the intake key. Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`); a test
tool's own browser download is never used. Without Chromium or the playwright package, the tests skip
and say which is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.app import create_app
from serving.dependencies import services_of
from serving.settings import Settings
from tests.browser.seed import store_seeds
from tests.keys import INTAKE

CHROMIUM = os.environ.get("TRIAGE_TEST_CHROMIUM", "/usr/bin/chromium")
#: Headless, and none of Chromium's own network traffic (the machine is offline; see the machine notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
API_CASES = [
    {"case_id": "WEB-API-1", "title": "小区垃圾站一周没人清运",
     "body": "南湖区翠湖湾小区垃圾站已经一周没人清运，臭气熏天。"},
    {"case_id": "WEB-API-2", "title": "请问孩子上小学报名需要准备哪些材料？", "body": ""},
]


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is missing at {CHROMIUM} (apt-get install chromium; .ci/run does this)"
    return None


@dataclass
class LiveServer:
    url: str
    app: Any


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    reason = _missing_browser()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    import uvicorn

    database = tmp_path_factory.mktemp("web-db") / "triage.db"
    app = create_app(Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{database}"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    store_seeds(services_of(app).store)
    with httpx.Client(base_url=url, headers=INTAKE, timeout=30) as client:
        for case in API_CASES:
            client.post("/v1/triage", json=case).raise_for_status()
    try:
        yield LiveServer(url, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser(live_server: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a Chinese locale; console errors are collected."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
