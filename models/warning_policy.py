"""The warning policy file (`models/defaults/warnings.yaml`): what issues a warning and its deadlines.

Read once at start-up like the hot-issue settings (`models.config_file`), so a typo stops the service with
the file and field named. Deadlines are versioned config, never literals in route code.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from models.config_file import DEFAULTS_DIR, load_settings_file

DEFAULT_WARNING_POLICY = DEFAULTS_DIR / "warnings.yaml"
WarningLevel = Literal["red", "yellow"]
_DURATION = re.compile(r"^\s*(\d{1,6}(?:\.\d{1,3})?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    """`2h`, `30m`, `1d`, `90s` or a number of seconds, as a timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 2h, 30m, 1d or a number of seconds")
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Deadlines(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    acknowledge: Duration = Field(description="From issue to 签收.")
    resolve: Duration = Field(description="From issue to 办结.")

    @model_validator(mode="after")
    def _ordered(self) -> Deadlines:
        if self.acknowledge <= timedelta(0) or self.resolve <= timedelta(0):
            raise ValueError("deadlines must be positive")
        if self.resolve < self.acknowledge:
            raise ValueError("resolve must not come before acknowledge")
        return self


class WarningPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = "builtin"
    issue_yellow: bool = True
    timezone: str = "Asia/Shanghai"
    deadlines: dict[WarningLevel, Deadlines] = Field(
        default_factory=lambda: {
            "red": Deadlines(acknowledge=timedelta(hours=2), resolve=timedelta(hours=24)),
            "yellow": Deadlines(acknowledge=timedelta(days=1), resolve=timedelta(days=3)),
        }
    )
    gazetteer: str | None = Field(None, description="District gazetteer YAML; default the shipped one.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    @model_validator(mode="after")
    def _both_levels(self) -> WarningPolicy:
        missing = {"red", "yellow"} - set(self.deadlines)
        if missing:
            raise ValueError(f"deadlines: give acknowledge and resolve for {', '.join(sorted(missing))}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def issues(self, level: str | None) -> bool:
        """Whether a case at `level` gets a warning."""
        return level == "red" or (level == "yellow" and self.issue_yellow)

    def deadlines_for(self, level: str) -> Deadlines | None:
        return self.deadlines.get(level)  # type: ignore[call-overload]


def load_warning_policy(path: str | Path | None = None) -> WarningPolicy:
    """The given YAML, else the shipped default, else the built-in defaults (the same values)."""
    if path is None and not DEFAULT_WARNING_POLICY.exists():
        return WarningPolicy()
    return load_settings_file(WarningPolicy, Path(path) if path else DEFAULT_WARNING_POLICY)
