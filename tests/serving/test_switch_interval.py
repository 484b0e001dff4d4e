"""The served app hands the interpreter lock over at the configured interval, and gives the old one back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from serving.app import create_app
from serving.settings import Settings
from serving.switch_interval import switch_interval


def _settings(tmp_path: Path, demo_bundle_dir: Path, **extra: float) -> Settings:
    return Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'triage.db'}",
                    spool_dir=tmp_path / "spool", **extra)


@pytest.mark.parametrize("milliseconds", [20.0, 2.5])
def test_the_app_runs_with_its_switch_interval_and_restores_the_one_before(
    tmp_path: Path, demo_bundle_dir: Path, milliseconds: float
) -> None:
    before = sys.getswitchinterval()
    with TestClient(create_app(_settings(tmp_path, demo_bundle_dir, gil_switch_interval_ms=milliseconds))) as client:
        assert client.get("/healthz").status_code == 200
        assert sys.getswitchinterval() == pytest.approx(milliseconds / 1000)
    assert sys.getswitchinterval() == before


def test_the_default_is_longer_than_pythons_and_zero_leaves_the_interpreters(
    tmp_path: Path, demo_bundle_dir: Path
) -> None:
    assert Settings().gil_switch_interval_ms == 20.0
    before = sys.getswitchinterval()
    with TestClient(create_app(_settings(tmp_path, demo_bundle_dir, gil_switch_interval_ms=0))):
        assert sys.getswitchinterval() == before


def test_an_error_inside_the_block_still_restores_the_interval() -> None:
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), switch_interval(40.0):
        assert sys.getswitchinterval() == pytest.approx(0.04)
        raise RuntimeError("start-up failed")
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("value", [-1.0, 5000.0])
def test_an_interval_out_of_range_is_refused_naming_the_setting(value: float) -> None:
    with pytest.raises(ValidationError, match="gil_switch_interval_ms"):
        Settings(gil_switch_interval_ms=value)
