"""The deployment files in `deploy/` agree with the code they start and configure.

Each check parses a file and compares it with the code: the env examples with `serving.settings.Settings`
and the variables MLflow and the service read, the systemd units with the console scripts, the app
factory and the command-line options they pass, nginx's limits and cookie with the service's own, the
database roles with the URLs that use them. A renamed setting, option, route or cookie fails here.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import shlex
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest

from serving.app import KEEP_ALIVE_SECONDS
from serving.auth import KeyRing
from serving.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TRIAGE_ENV = DEPLOY / "env" / "triage.env.example"
MLFLOW_ENV = DEPLOY / "env" / "mlflow.env.example"
TRIAGE_UNIT = DEPLOY / "systemd" / "grievance-triage@.service"
MLFLOW_UNIT = DEPLOY / "systemd" / "mlflow.service"
REPORT_UNIT = DEPLOY / "systemd" / "triage-report.service"
REPORT_TIMER = DEPLOY / "systemd" / "triage-report.timer"
NGINX = DEPLOY / "nginx" / "grievance-triage.conf"
INIT_SQL = DEPLOY / "postgres" / "init.sql"
#: Where the units expect the repository checkout (deploy/README.md).
INSTALL_ROOT = "/opt/grievance-triage"
#: An assignment, active (`KEY=value`) or documenting a default left in force (`#KEY=value`).
ASSIGNMENT = re.compile(r"^(#?)([A-Z][A-Z0-9_]*)=(.*)$")
PLACEHOLDER = re.compile(r"REPLACE_WITH_[A-Z0-9_]+")


def parse_env(path: Path) -> list[tuple[str, str, bool, int]]:
    """(name, value, active, line number) of every assignment in an env example."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = ASSIGNMENT.match(line)
        if match:
            found.append((match.group(2), match.group(3), match.group(1) == "", number))
    return found


def active_env(path: Path) -> dict[str, str]:
    return {name: value for name, value, active, _ in parse_env(path) if active}


def settings_variables() -> set[str]:
    return {f"TRIAGE_{name.upper()}" for name in Settings.model_fields}


def parse_unit(path: Path) -> dict[str, list[str]]:
    """`Key=value` entries of a unit file (continuation lines joined); a key may repeat."""
    text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
    entries: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def in_checkout(path: str) -> Path:
    """The file an absolute path under the install root names in this repository."""
    assert path == INSTALL_ROOT or path.startswith(INSTALL_ROOT + "/"), f"{path} is not under {INSTALL_ROOT}"
    return ROOT / path.removeprefix(INSTALL_ROOT).lstrip("/")


def click_options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")}


def command_flags(argv: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}


def console_script(name: str) -> str:
    (target,) = {ep.value for ep in entry_points(group="console_scripts") if ep.name == name}
    return target


def nginx_directives(name: str) -> list[str]:
    text = "\n".join(line.split("#", 1)[0] for line in NGINX.read_text(encoding="utf-8").splitlines())
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{re.escape(name)}\s+([^;]*);", text)]


def nginx_bytes(size: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", size)
    assert match, f"unreadable nginx size {size!r}"
    return int(match.group(1)) * units[match.group(2).lower()]


# --- env examples ---------------------------------------------------------------------------------


def test_every_triage_variable_in_the_example_is_a_setting_and_every_setting_is_documented() -> None:
    names = [name for name, *_ in parse_env(TRIAGE_ENV)]
    triage = {name for name in names if name.startswith("TRIAGE_")}
    assert triage - settings_variables() == set(), "variables no Settings field reads"
    assert settings_variables() - triage == set(), "Settings fields the example does not document"
    assert len(names) == len(set(names)), "a variable is assigned twice"


@pytest.mark.parametrize("path", [TRIAGE_ENV, MLFLOW_ENV], ids=lambda p: p.name)
def test_every_assignment_has_a_comment_above_it(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for name, _, _, number in parse_env(path):
        above = lines[number - 2] if number >= 2 else ""
        documented = above.startswith("# ") or bool(ASSIGNMENT.match(above) and above.startswith("#"))
        assert documented, f"{path.name}:{number}: {name} has no comment above it"


def test_the_triage_example_validates_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The active values (placeholders included) and the documented defaults are accepted by Settings."""
    for name in settings_variables():
        monkeypatch.delenv(name, raising=False)
    for name, value in active_env(TRIAGE_ENV).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    defaults = Settings.model_construct()
    for name, value, active, _ in parse_env(TRIAGE_ENV):
        if not active and name.startswith("TRIAGE_") and value:
            field = name.removeprefix("TRIAGE_").lower()
            parsed = Settings.model_validate({field: value})  # a documented default must parse ...
            if field != "hotspot_config":  # ... and be the default (the hotspot file is the default by path)
                assert getattr(parsed, field) == getattr(defaults, field), f"{name}={value} is not the default"
    assert settings.model_uri.startswith("models:/") and "@" in settings.model_uri, "serve a registry alias"
    assert settings.database_url.startswith("postgresql+psycopg://")


def test_the_documented_hotspot_config_is_the_shipped_file() -> None:
    (value,) = [v for name, v, _, _ in parse_env(TRIAGE_ENV) if name == "TRIAGE_HOTSPOT_CONFIG"]
    from models.hotspot_settings import DEFAULT_HOTSPOT_CONFIG

    assert in_checkout(value) == DEFAULT_HOTSPOT_CONFIG


def test_secrets_are_placeholders_and_keys_are_digests() -> None:
    env = active_env(TRIAGE_ENV)
    assert PLACEHOLDER.fullmatch(env["TRIAGE_SESSION_SECRET"])
    assert PLACEHOLDER.search(env["TRIAGE_DATABASE_URL"].split("@", 1)[0]), "the database password"
    entries = env["TRIAGE_API_KEYS"].split(",")
    assert {entry.split(":")[1] for entry in entries} == {"intake", "reviewer", "admin"}
    for entry in entries:
        key = entry.split(":", 2)[2]
        assert key.startswith("sha256:") and PLACEHOLDER.fullmatch(key.removeprefix("sha256:")), entry
    # With real digests in place, the service accepts the entries as they are written.
    keys = iter(range(len(entries)))
    filled = PLACEHOLDER.sub(lambda _: hashlib.sha256(f"key number {next(keys)}".encode()).hexdigest(),
                             env["TRIAGE_API_KEYS"])
    ring = KeyRing.from_spec(filled)
    assert len(ring.digests()) == len(entries)
    mlflow = active_env(MLFLOW_ENV)
    assert PLACEHOLDER.search(mlflow["MLFLOW_BACKEND_STORE_URI"].split("@", 1)[0])


def test_other_variables_in_the_triage_example_are_read_by_the_code() -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8") for d in ("serving", "models", "training") for p in (ROOT / d).rglob("*.py")
    )
    for name in active_env(TRIAGE_ENV):
        if not name.startswith("TRIAGE_"):
            assert f'"{name}"' in sources, f"{name} is read nowhere in serving/, models/, training/"


def test_mlflow_example_sets_only_variables_mlflow_server_reads() -> None:
    from mlflow import environment_variables
    from mlflow.cli import server

    read = {param.envvar for param in server.params if isinstance(param.envvar, str)}
    read |= {v.name for v in vars(environment_variables).values() if hasattr(v, "name") and hasattr(v, "get")}
    boto = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"}
    for name, *_ in parse_env(MLFLOW_ENV):
        assert name in read | boto, f"{name} is not a variable MLflow (or boto3 for S3) reads"
    assert {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"} <= set(active_env(MLFLOW_ENV))


# --- systemd units --------------------------------------------------------------------------------


def test_triage_unit_starts_the_app_factory_with_the_venv_uvicorn() -> None:
    unit = parse_unit(TRIAGE_UNIT)
    argv = shlex.split(unit["ExecStart"][0])
    assert in_checkout(argv[0]).relative_to(ROOT) == Path(".venv/bin/uvicorn")
    assert re.search(r"(?m)^VENV\s*\?=\s*\.venv\s*$", (ROOT / "Makefile").read_text()), "make install's venv"
    assert console_script("uvicorn") == "uvicorn.main:main"
    target = next(arg for arg in argv[1:] if not arg.startswith("-"))
    assert target == "serving.app:create_app" and "--factory" in argv
    module, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module), attribute)
    required = [p for p in inspect.signature(factory).parameters.values() if p.default is inspect.Parameter.empty]
    assert callable(factory) and not required, "uvicorn --factory calls it without arguments"
    from uvicorn.main import main as uvicorn_main

    assert command_flags(argv) <= click_options(uvicorn_main), "options this uvicorn does not have"
    assert argv[argv.index("--port") + 1] == "%i", "one instance per port"
    assert in_checkout(unit["WorkingDirectory"][0]) == ROOT
    assert unit["EnvironmentFile"] == ["/etc/grievance-triage/triage.env"]


def test_triage_unit_waits_for_a_route_the_app_has() -> None:
    from serving.app import create_app

    unit = parse_unit(TRIAGE_UNIT)
    (post,) = unit["ExecStartPost"]
    url = shlex.split(post)[-1]
    assert url == "http://127.0.0.1:%i/readyz"
    app = create_app(Settings(database_url="sqlite://"))
    assert "get" in app.openapi()["paths"]["/readyz"]


def test_triage_unit_spool_is_its_private_state_directory() -> None:
    unit = parse_unit(TRIAGE_UNIT)
    state = "/var/lib/" + unit["StateDirectory"][0]
    assert active_env(TRIAGE_ENV)["TRIAGE_SPOOL_DIR"].startswith(state + "/")
    assert unit["StateDirectoryMode"] == ["0700"] and unit["UMask"] == ["0077"]


def test_mlflow_unit_runs_the_venv_mlflow_server_with_proxied_artifacts() -> None:
    unit = parse_unit(MLFLOW_UNIT)
    argv = shlex.split(unit["ExecStart"][0])
    assert in_checkout(argv[0]).relative_to(ROOT) == Path(".venv/bin/mlflow")
    assert console_script("mlflow") == "mlflow.cli:cli"
    assert argv[1] == "server" and "--serve-artifacts" in argv
    from mlflow.cli import server

    assert command_flags(argv) <= click_options(server)
    assert "--backend-store-uri" not in argv, "the URI holds a password: read it from the environment"
    assert unit["EnvironmentFile"] == ["/etc/grievance-triage/mlflow.env"]
    assert unit["WorkingDirectory"] == ["/var/lib/" + unit["StateDirectory"][0]]
    destination = active_env(MLFLOW_ENV)["MLFLOW_ARTIFACTS_DESTINATION"]
    assert destination.startswith(unit["WorkingDirectory"][0] + "/")
    port = argv[argv.index("--port") + 1]
    assert active_env(TRIAGE_ENV)["MLFLOW_TRACKING_URI"].endswith(f":{port}")


def test_report_unit_runs_triage_report_with_options_the_command_has() -> None:
    """The weekly report job: the venv's `triage report`, options it accepts, into its own state folder."""
    import typer.main

    from command.cli import app

    unit = parse_unit(REPORT_UNIT)
    assert unit["Type"] == ["oneshot"]
    argv = shlex.split(unit["ExecStart"][0])
    assert in_checkout(argv[0]).relative_to(ROOT) == Path(".venv/bin/triage")
    assert console_script("triage") == "command.cli:app"
    assert argv[1] == "report"
    command = typer.main.get_command(app).commands["report"]  # type: ignore[attr-defined]
    assert command_flags(argv[2:]) <= click_options(command), "options `triage report` does not have"
    assert argv[argv.index("--period") + 1] == "week" and argv[argv.index("--date") + 1] == "yesterday"
    out = argv[argv.index("--out") + 1]
    states = unit["StateDirectory"][0].split()
    assert any(str(Path(out).parent) == f"/var/lib/{state}" for state in states), "written into its state folder"
    assert out.endswith(".pdf") and "{date}" in out, "one file per week"
    assert unit["EnvironmentFile"] == parse_unit(TRIAGE_UNIT)["EnvironmentFile"], "the replicas' settings"
    assert unit["User"] == parse_unit(TRIAGE_UNIT)["User"]
    # The job must finish printing before systemd gives up on it.
    assert int(unit["TimeoutStartSec"][0]) > float(argv[argv.index("--timeout") + 1])


def test_report_timer_starts_the_report_unit_weekly_in_beijing_time() -> None:
    timer = parse_unit(REPORT_TIMER)
    assert timer["Unit"] == [REPORT_UNIT.name]
    (calendar,) = timer["OnCalendar"]
    assert calendar.startswith("Mon ") and calendar.endswith(" Asia/Shanghai")
    assert timer["Persistent"] == ["true"]
    assert timer["WantedBy"] == ["timers.target"]
    assert "triage-report.timer" in (DEPLOY / "check.sh").read_text(encoding="utf-8"), "verified by check.sh"


# --- nginx ----------------------------------------------------------------------------------------


def test_nginx_body_limit_is_the_services() -> None:
    (size,) = nginx_directives("client_max_body_size")
    limit = int(active_env(TRIAGE_ENV)["TRIAGE_MAX_BODY_BYTES"])
    assert nginx_bytes(size) == limit
    assert f"request body over {limit} bytes" in NGINX.read_text(encoding="utf-8"), "nginx's own 413 text"


def test_nginx_balances_the_replicas_and_forwards_client_headers() -> None:
    (upstream,) = re.findall(r"upstream\s+(\w+)\s*{", NGINX.read_text(encoding="utf-8"))
    assert re.search(r"upstream\s+\w+\s*{[^}]*^\s*least_conn;", NGINX.read_text(encoding="utf-8"), re.M)
    assert set(nginx_directives("proxy_pass")) == {f"http://{upstream}"}
    headers = {h.split()[0]: h.split(None, 1)[1] for h in nginx_directives("proxy_set_header")}
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    servers = [s.split()[0] for s in nginx_directives("server") if not s.startswith("{")]
    assert servers and all(re.fullmatch(r"127\.0\.0\.1:\d+", s) for s in servers)
    argv = shlex.split(parse_unit(TRIAGE_UNIT)["ExecStart"][0])
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "127.0.0.1" in argv[argv.index("--forwarded-allow-ips") + 1].split(",")
    # nginx must drop an idle upstream connection before uvicorn does.
    (upstream_idle,) = [v for v in nginx_directives("keepalive_timeout") if v == "60s"]
    assert int(argv[argv.index("--timeout-keep-alive") + 1]) > int(upstream_idle.removesuffix("s"))
    # `triage serve` keeps connections as long as the unit does.
    assert int(argv[argv.index("--timeout-keep-alive") + 1]) == KEEP_ALIVE_SECONDS


def test_nginx_marks_the_services_session_cookie_secure_and_serves_the_pages() -> None:
    from serving.web.pages import PAGE_PREFIXES
    from serving.web.session import SESSION_COOKIE

    assert nginx_directives("proxy_cookie_flags") == [f"{SESSION_COOKIE} secure"]
    locations = set(re.findall(r"location\s+(?:=\s+)?(\S+)\s*{", NGINX.read_text(encoding="utf-8")))
    for prefix in PAGE_PREFIXES:
        assert prefix.rstrip("/") in locations, f"{prefix} pages"
    assert any("ssl" in listen.split() for listen in nginx_directives("listen"))


# --- PostgreSQL roles -----------------------------------------------------------------------------


def test_database_roles_match_the_urls_and_the_app_role_only_appends() -> None:
    sql = INIT_SQL.read_text(encoding="utf-8")
    for url in (active_env(TRIAGE_ENV)["TRIAGE_DATABASE_URL"], active_env(MLFLOW_ENV)["MLFLOW_BACKEND_STORE_URI"]):
        match = re.fullmatch(r"postgresql\+psycopg://(\w+):[^@]+@[^/]+/(\w+)", url)
        assert match, url
        role, database = match.groups()
        assert re.search(rf"(?m)^CREATE ROLE {role}\s+LOGIN", sql), f"role {role}"
        assert re.search(rf"(?m)^CREATE DATABASE {database} ", sql), f"database {database}"
    app_role = re.match(r"postgresql\+psycopg://(\w+):", active_env(TRIAGE_ENV)["TRIAGE_DATABASE_URL"]).group(1)
    grant = rf"(?m)^(?:ALTER DEFAULT PRIVILEGES .*?)?GRANT (.+?) ON (?:ALL )?TABLES .*TO {app_role};"
    table_grants = re.findall(grant, sql)
    assert table_grants and all(g.replace(" ", "") == "SELECT,INSERT" for g in table_grants), table_grants
    assert not re.search(r"(?im)^\s*GRANT\s+ALL", sql)
    assert "SUPERUSER" not in sql.replace("NOSUPERUSER", "")


def test_make_mlflow_ui_serves_the_store_the_run_links_name() -> None:
    """`triage train` prints a link to 127.0.0.1:5000; `make mlflow-ui` starts the UI there, on the same store."""
    import subprocess

    from models.tracking import run_link, tracking_uri

    root = Path(__file__).resolve().parents[2]
    dry = subprocess.run(["make", "--no-print-directory", "-n", "mlflow-ui"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    (command,) = [line for line in dry.splitlines() if "mlflow ui" in line]
    assert "mlflow ui" in command and "--port 5000" in command and "--host 127.0.0.1" in command
    assert f"--backend-store-uri sqlite:///{root / 'mlflow.db'}" in command
    link = run_link("1", "abc")
    assert link.startswith("http://127.0.0.1:5000/") and "make mlflow-ui" in link
    assert tracking_uri().startswith("sqlite:")
