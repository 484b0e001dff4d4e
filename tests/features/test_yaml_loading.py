"""`features.yaml_loading.safe_load` reads every shipped YAML file as PyYAML's own safe loader does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features import yaml_loading
from features.yaml_loading import safe_load

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*(ROOT / "features" / "data").glob("*.yaml"), *(ROOT / "models" / "defaults").glob("*.yaml"),
                  *(ROOT / "experiments").glob("*.yaml")])


def test_libyaml_is_the_loader_here() -> None:
    # PyYAML's wheels carry libyaml; without it the loader falls back to the pure-Python one (slower, same).
    assert yaml_loading._LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_files_read_as_pythons_safe_loader_reads_them(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert safe_load(text) == yaml.safe_load(text)


def test_a_mistake_names_its_line() -> None:
    with pytest.raises(yaml.YAMLError, match="line 3"):
        safe_load("a: 1\nb: [2, 3\nc: 4\n")


def test_only_plain_types_are_built() -> None:
    with pytest.raises(yaml.YAMLError):
        safe_load("!!python/object/apply:os.system ['true']")
