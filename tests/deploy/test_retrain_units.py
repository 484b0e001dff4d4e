"""The scheduled retraining units run a `triage` command that exists, with options it has, and treat its
exit codes as `triage retrain` defines them (issue 17, item 5)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from command.cli import app
from tests.deploy.test_deploy_files import (
    DEPLOY,
    ROOT,
    click_options,
    command_flags,
    console_script,
    in_checkout,
    parse_unit,
)

SERVICE = DEPLOY / "systemd" / "grievance-triage-retrain.service"
TIMER = DEPLOY / "systemd" / "grievance-triage-retrain.timer"


def test_the_service_runs_triage_retrain_with_options_it_has() -> None:
    unit = parse_unit(SERVICE)
    argv = shlex.split(unit["ExecStart"][0])
    assert in_checkout(argv[0]).relative_to(ROOT) == Path(".venv/bin/triage")
    assert console_script("triage") == "command.cli:app"
    assert argv[1] == "retrain"
    command = typer.main.get_command(app).commands["retrain"]  # type: ignore[attr-defined]
    assert command_flags(argv) <= click_options(command)
    assert unit["Type"] == ["oneshot"] and unit["EnvironmentFile"] == ["/etc/grievance-triage/triage.env"]
    # The exported reviews hold citizens' text: the work folder is inside the private state directory.
    work = argv[argv.index("--work-dir") + 1]
    assert work.startswith("/var/lib/" + unit["StateDirectory"][0] + "/") and unit["UMask"] == ["0077"]


@pytest.mark.parametrize(("status", "code"), [("promoted", 0), ("refused", 1), ("failed", 2)])
def test_a_refusal_is_a_success_for_systemd_and_a_failure_is_not(
    status: str, code: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The unit's SuccessExitStatus against the exit code `triage retrain` gives each outcome (the run itself,
    tested in tests/training/test_retrain.py, replaced here by its outcome)."""
    import training.retrain
    from training.retrain import RetrainOutcome

    monkeypatch.setattr(training.retrain, "retrain",
                        lambda *a, **k: RetrainOutcome(status=status, reason="because", started_at="2026-12-06"))
    history = tmp_path / "history.csv"
    history.write_text("case_id,title,body,department\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["retrain", "--history", str(history), "--database-url", "sqlite://"])
    assert result.exit_code == code, result.output
    assert status in result.output and "because" in result.output
    allowed = {0, *(int(v) for v in parse_unit(SERVICE)["SuccessExitStatus"][0].split())}
    assert (code in allowed) == (status != "failed")


def test_the_timer_starts_the_service_weekly_and_catches_up() -> None:
    timer = parse_unit(TIMER)
    assert timer["Unit"] == [SERVICE.name]
    assert timer["OnCalendar"][0].startswith("Sun ")
    assert timer["Persistent"] == ["true"] and timer["WantedBy"] == ["timers.target"]
