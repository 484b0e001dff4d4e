"""The district (区 / 县, 属地) a case text names, read against a gazetteer of the districts that act on warnings.

`features.places` finds district-like names by their suffix (青林区, K9县, 感谢临江县: its left edge is a
heuristic); a warning must go to a district that exists, so each name it finds is matched against the
gazetteer: the entry whose name or alias ends that name (感谢临江县 -> 临江县, 云川经开区 -> 云川经开区,
经开区 -> 云川经开区). When the pattern finds none, the text is searched for the gazetteer's names themselves
(one `str.find` per name: linear in the text). The title is read before the body; no match is `UNKNOWN`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from features.places import extract_places
from features.text import normalise
from features.yaml_loading import safe_load

UNKNOWN = "unknown"
DEFAULT_GAZETTEER = Path(__file__).resolve().parent / "data" / "districts.yaml"
MAX_NAME_CHARS = 32


class GazetteerError(ValueError):
    """A gazetteer file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Gazetteer:
    """District names and, for each, the names texts use for it (longest first, for suffix matching)."""

    version: str
    #: (spelling, district), longest spelling first.
    spellings: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, districts: Mapping[str, Iterable[str]], version: str = "inline") -> Gazetteer:
        pairs: dict[str, str] = {}
        for name, aliases in districts.items():
            for spelling in (name, *aliases):
                spelling = normalise(str(spelling)).strip()
                if spelling:
                    pairs.setdefault(spelling, name)
        return cls(version, tuple(sorted(pairs.items(), key=lambda p: (-len(p[0]), p[0]))))

    @property
    def districts(self) -> list[str]:
        return sorted(set(d for _, d in self.spellings))

    def match(self, name: str) -> str | None:
        """The district whose name or alias ends `name` (a district-like name found in a text), or None."""
        for spelling, district in self.spellings:
            if name.endswith(spelling):
                return district
        return None

    def search(self, text: str) -> str | None:
        """The district named earliest in `text` (a longer spelling wins at the same place), or None."""
        best: tuple[int, int, str] | None = None
        for spelling, district in self.spellings:
            at = text.find(spelling)
            if at >= 0 and (best is None or (at, -len(spelling)) < best[:2]):
                best = (at, -len(spelling), district)
        return None if best is None else best[2]


def load_gazetteer(path: str | Path | None = None) -> Gazetteer:
    """The gazetteer in `path` (YAML: `districts: {name: [alias, ...]}`), default the shipped demo city's."""
    source = Path(path) if path else DEFAULT_GAZETTEER
    try:
        raw = safe_load(source.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise GazetteerError(f"{source}: gazetteer file not found") from None
    except yaml.YAMLError as exc:
        raise GazetteerError(f"{source}: not valid YAML ({type(exc).__name__})") from None
    districts = raw.get("districts") if isinstance(raw, dict) else None
    if not isinstance(districts, dict) or not districts:
        raise GazetteerError(f"{source}: expected a non-empty mapping `districts: {{name: [aliases]}}`")
    for name, aliases in districts.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
            raise GazetteerError(f"{source}: districts.{name}: a name must be text of 1-{MAX_NAME_CHARS} characters")
        if aliases is not None and not (
            isinstance(aliases, list) and all(isinstance(a, str) and 1 <= len(a) <= MAX_NAME_CHARS for a in aliases)
        ):
            raise GazetteerError(f"{source}: districts.{name}: aliases must be a list of names")
    return Gazetteer.of({k: v or [] for k, v in districts.items()}, version=str(raw.get("version", source.name)))


def district_of(title: str | None, body: str | None, gazetteer: Gazetteer) -> str:
    """The district the case names (title first, then body), or `UNKNOWN`."""
    for text in (normalise(title or ""), normalise(body or "")):
        if not text:
            continue
        places = [p for p in extract_places(text) if p.kind == "district"]
        for place in sorted(places, key=lambda p: p.start):
            found = gazetteer.match(place.name)
            if found:
                return found
        found = gazetteer.search(text)
        if found:
            return found
    return UNKNOWN
