"""Settings files: one YAML mapping validated by a pydantic model, with errors that name the file and field.

Training's config and the hot-issue detector's settings are read the same way, so a typo stops a run or
the service with one line saying where it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from features.yaml_loading import safe_load

#: Default settings files ship inside the packages (package data), beside the code that reads them.
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the field."""


def load_settings_file(model: type[M], path: Path) -> M:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
