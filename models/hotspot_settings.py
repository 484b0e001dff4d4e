"""The hot-issue detector's settings file: training, batch replay and the service all read it here."""

from __future__ import annotations

from pathlib import Path

from models.config_file import DEFAULTS_DIR, load_settings_file
from models.hotspots import HotspotConfig

#: Shipped with the package (package data); `TRIAGE_HOTSPOT_CONFIG` or `--hotspot-config` name another.
DEFAULT_HOTSPOT_CONFIG = DEFAULTS_DIR / "hotspots.yaml"


def load_hotspot_config(path: str | Path | None = None) -> HotspotConfig:
    """The detector's settings: the given YAML, else the shipped default file, else built-in defaults."""
    if path is None and not DEFAULT_HOTSPOT_CONFIG.exists():
        return HotspotConfig()
    return load_settings_file(HotspotConfig, Path(path) if path else DEFAULT_HOTSPOT_CONFIG)
