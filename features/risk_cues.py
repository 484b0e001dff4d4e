"""Risk cues: lexicon matches with offsets, counts of affected people, features and the cue-rule baseline.

Everything here reads one string, the text of a case as built by
``features.text.case_text(title, body)`` (normalised, personal numbers masked). Functions do not
normalise again, so every ``start`` / ``end`` offset they return indexes that very string and the
reviewer page can highlight ``text[start:end]``.

The lexicon (``features/data/risk_lexicon.yaml``) is data, versioned, validated and compiled once per
process by `load_lexicon`. The public pieces:

- `match_cues(text)`: every rubric cue found in a text (`CueMatch`, sorted by start);
- `extract_counts(text)`: how many people or households a text says are affected (`PeopleCount`);
- `cue_features(text)`: a fixed, named set of numbers for the learned risk model (`FEATURE_NAMES`);
- `RiskCueVectorizer`: the same features as an sklearn transformer over (title, body) cases;
- `rule_risk_level(text)`: the cue-rule baseline and weak labeler (red / yellow / green).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from re import _constants as _sre
from re import _parser as _sre_parse
from typing import Any, TypeAlias

import numpy as np
import yaml
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from features.text import case_text
from features.vectorizer import as_pairs
from features.yaml_loading import safe_load

__all__ = [
    "CRITERIA",
    "FEATURE_NAMES",
    "LEVELS",
    "MANY_PEOPLE_THRESHOLD",
    "CueMatch",
    "Lexicon",
    "PeopleCount",
    "RiskCueVectorizer",
    "cue_features",
    "extract_counts",
    "load_lexicon",
    "match_cues",
    "rule_risk_level",
]

#: Rubric criteria in priority order: within a level the first one listed is reported first.
CRITERIA: tuple[str, ...] = (
    "red-1", "red-2", "red-3", "red-4", "yellow-1", "yellow-2", "yellow-3", "yellow-4",
)
#: Levels from most to least urgent.
#: The rubric's criteria as a reviewer names them (shared/risk-rubric.md).
CRITERION_NAMES: dict[str, str] = {
    "red-1": "危及生命或人身安全",
    "red-2": "急性公共卫生危害",
    "red-3": "多人面临紧急损失",
    "red-4": "群体性冲突正在升级",
    "yellow-1": "健康、财产或生计持续受损",
    "yellow-2": "影响人数较多",
    "yellow-3": "反复反映未解决",
    "yellow-4": "涉及弱势群体",
}
LEVELS: tuple[str, ...] = ("red", "yellow", "green")
#: A text that names at least this many people or households affects "many people".
MANY_PEOPLE_THRESHOLD = 10
#: Category of the yellow-2 matches produced from a people count (not from a lexicon phrase).
PEOPLE_COUNT_CATEGORY = "people_count"

_LEXICON_FILE = "risk_lexicon.yaml"
_ENTRY_KEYS = frozenset(
    {"category", "phrase", "phrases", "regex", "requires_any", "window", "negations", "negation_window",
     "needs_many_people"}
)
_TOP_KEYS = frozenset({"version", "defaults", "word_sets", "criteria"})
_DEFAULT_KEYS = frozenset({"window", "negation_window", "negations"})
_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A negation must sit in the same clause as the cue; a second cue (requires_any) in the same sentence.
_CLAUSE_BREAK = re.compile(r"[,，。!！?？;；\n]")
_SENTENCE_BREAK = re.compile(r"[。!！?？;；\n]")


# ---------------------------------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CueMatch:
    """One rubric cue in a text.

    ``start`` / ``end`` index the string that was passed in, which callers build with
    ``case_text(title, body)``; ``text[start:end] == phrase``.
    """

    criterion: str  # "red-1" ... "yellow-4"
    category: str  # lexicon category, e.g. "gas_leak"; "people_count" for a yellow-2 count
    phrase: str  # the matched text
    start: int
    end: int


@dataclass(frozen=True)
class PeopleCount:
    """A number of people or households that a text says are involved ("60多名工人" -> 60, 名, 工人)."""

    count: int
    unit: str  # 人 / 名 / 位 / 户 / 家 / 个 / 号 / 口; "" when the number stands right before the noun
    noun: str | None  # 工人 / 业主 / 村民 / 学生 ... when one follows
    start: int
    end: int


# ---------------------------------------------------------------------------------------------------
# Lexicon: load, validate, compile once
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str  # for error messages: "red-1[3] (gas_leak)"
    criterion: str
    category: str
    pattern: re.Pattern[str]
    requires: re.Pattern[str] | None
    window: int
    negation: re.Pattern[str] | None
    negation_window: int
    needs_many_people: bool


@dataclass(frozen=True)
class Lexicon:
    """The compiled lexicon. Build it with `load_lexicon`, not directly."""

    version: str
    source: str
    entries: tuple[_Entry, ...]
    many_people_categories: frozenset[tuple[str, str]]  # (criterion, category) marked needs_many_people

    def needs_many_people(self, criterion: str, category: str) -> bool:
        return (criterion, category) in self.many_people_categories

    @property
    def categories(self) -> dict[str, tuple[str, ...]]:
        """Categories per criterion, in lexicon order."""
        out: dict[str, list[str]] = {c: [] for c in CRITERIA}
        for e in self.entries:
            if e.category not in out[e.criterion]:
                out[e.criterion].append(e.category)
        return {c: tuple(v) for c, v in out.items()}

    @cached_property
    def scanner(self) -> _Scanner:
        """The one-pass matcher over all entries, built once per lexicon (`_parse_lexicon` builds it)."""
        return _Scanner.build(self.entries)


def _literal_alternation(phrases: Sequence[str]) -> str:
    """One regex for a list of literal phrases; the longest first so "燃气泄漏" wins over "燃气"."""
    return "|".join(re.escape(p) for p in sorted(set(phrases), key=lambda p: (-len(p), p)))


def _str_list(value: Any, what: str, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"risk lexicon entry {name}: {what} must be a non-empty list of non-empty strings")
    return [v.strip() for v in value]


def _positive_int(value: Any, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 200:
        raise ValueError(f"risk lexicon entry {name}: {what} must be an integer in 1..200, got {value!r}")
    return value


def _expand_sets(items: list[str], sets: dict[str, list[str]], name: str) -> list[str]:
    """Replace "@name" items by the words of word_sets[name]."""
    out: list[str] = []
    for item in items:
        if item.startswith("@"):
            if item[1:] not in sets:
                raise ValueError(f"risk lexicon entry {name}: unknown word set {item!r}")
            out.extend(sets[item[1:]])
        else:
            out.append(item)
    return out


def _compile_entry(
    criterion: str, index: int, raw: Any, defaults: dict[str, Any], sets: dict[str, list[str]]
) -> _Entry:
    category = raw.get("category") if isinstance(raw, dict) else None
    name = f"{criterion}[{index}] ({category or '?'})"
    if not isinstance(raw, dict):
        raise ValueError(f"risk lexicon entry {name}: must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"risk lexicon entry {name}: unknown key(s) {sorted(unknown)}")
    if not isinstance(category, str) or not _CATEGORY_NAME.match(category):
        raise ValueError(f"risk lexicon entry {name}: category must be a snake_case name, got {category!r}")
    if category == PEOPLE_COUNT_CATEGORY:
        raise ValueError(f"risk lexicon entry {name}: category {PEOPLE_COUNT_CATEGORY!r} is reserved")
    kinds = [k for k in ("phrase", "phrases", "regex") if k in raw]
    if len(kinds) != 1:
        raise ValueError(f"risk lexicon entry {name}: needs exactly one of phrase / phrases / regex, got {kinds}")
    kind = kinds[0]
    if kind == "regex":
        if not isinstance(raw["regex"], str) or not raw["regex"].strip():
            raise ValueError(f"risk lexicon entry {name}: regex must be a non-empty string")
        source = raw["regex"]
    else:
        source = _literal_alternation(_str_list(raw[kind], kind, name))
    try:
        pattern = re.compile(source)
    except re.error as exc:
        raise ValueError(f"risk lexicon entry {name}: invalid regular expression: {exc}") from exc
    if pattern.fullmatch("") is not None or _sre_parse.parse(source).getwidth()[0] == 0:
        # The one-pass scanner finds a match by its first character. An empty match (possible after a
        # lookbehind: "(?<=燃气)(泄漏)?") has none, and finditer's rule after one (retry the same position
        # for a non-empty match) has no anchored equivalent.
        raise ValueError(
            f"risk lexicon entry {name}: the pattern can match the empty string "
            "(every match must be at least one character long)"
        )

    requires = None
    if "requires_any" in raw:
        words = _expand_sets(_str_list(raw["requires_any"], "requires_any", name), sets, name)
        requires = re.compile(_literal_alternation(words))
    window = _positive_int(raw.get("window", defaults["window"]), "window", name)
    if "window" in raw and requires is None:
        raise ValueError(f"risk lexicon entry {name}: window is only meaningful with requires_any")

    negation_items = raw.get("negations", defaults["negations"])
    if negation_items is None or negation_items == []:
        negation = None
    else:
        words = _expand_sets(_str_list(negation_items, "negations", name), sets, name)
        negation = re.compile(_literal_alternation(words))
    negation_window = _positive_int(raw.get("negation_window", defaults["negation_window"]), "negation_window", name)

    needs_many = raw.get("needs_many_people", False)
    if not isinstance(needs_many, bool):
        raise ValueError(f"risk lexicon entry {name}: needs_many_people must be true or false")
    if needs_many and criterion != "red-3":
        raise ValueError(f"risk lexicon entry {name}: needs_many_people applies to red-3 entries only")
    return _Entry(name, criterion, category, pattern, requires, window, negation, negation_window, needs_many)


def _parse_lexicon(text: str, source: str) -> Lexicon:
    try:
        doc = safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"risk lexicon {source}: invalid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"risk lexicon {source}: the top level must be a mapping")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise ValueError(f"risk lexicon {source}: unknown top-level key(s) {sorted(map(str, unknown))}")
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ValueError(f'risk lexicon {source}: a string `version` is required (e.g. version: "1")')

    raw_defaults = doc.get("defaults") or {}
    if not isinstance(raw_defaults, dict) or set(raw_defaults) - _DEFAULT_KEYS:
        raise ValueError(f"risk lexicon {source}: defaults must be a mapping with keys {sorted(_DEFAULT_KEYS)}")
    defaults = {"window": 12, "negation_window": 6, "negations": None, **raw_defaults}

    raw_sets = doc.get("word_sets") or {}
    if not isinstance(raw_sets, dict):
        raise ValueError(f"risk lexicon {source}: word_sets must be a mapping")
    sets = {str(k): _str_list(v, "a word set", f"word_sets.{k}") for k, v in raw_sets.items()}

    criteria = doc.get("criteria")
    if not isinstance(criteria, dict) or not criteria:
        raise ValueError(f"risk lexicon {source}: a non-empty `criteria` mapping is required")
    entries: list[_Entry] = []
    for criterion, raw_entries in criteria.items():
        if criterion not in CRITERIA:
            first = raw_entries[0] if isinstance(raw_entries, list) and raw_entries else None
            category = first.get("category") if isinstance(first, dict) else None
            raise ValueError(
                f"risk lexicon entry {criterion}[0] ({category or '?'}): unknown criterion {criterion!r}; "
                f"expected one of {', '.join(CRITERIA)}"
            )
        if not isinstance(raw_entries, list) or not raw_entries:
            raise ValueError(f"risk lexicon entry {criterion}: must be a non-empty list of entries")
        entries.extend(_compile_entry(criterion, i, raw, defaults, sets) for i, raw in enumerate(raw_entries))

    seen: dict[tuple[str, str], bool] = {}
    for e in entries:
        key = (e.criterion, e.category)
        if seen.setdefault(key, e.needs_many_people) != e.needs_many_people:
            raise ValueError(f"risk lexicon entry {e.name}: needs_many_people differs between entries of one category")
    # Entries in rubric order, so matches and reasons come out in a stable order.
    entries.sort(key=lambda e: CRITERIA.index(e.criterion))
    many = frozenset((e.criterion, e.category) for e in entries if e.needs_many_people)
    lexicon = Lexicon(version=version.strip(), source=source, entries=tuple(entries), many_people_categories=many)
    lexicon.scanner  # noqa: B018 - built at load, not on the first case
    return lexicon


@lru_cache(maxsize=8)
def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """The validated, compiled lexicon; the packaged one when ``path`` is None. Cached per path.

    Raises ValueError naming the offending entry (e.g. ``red-9[0] (gas_leak)``) for bad YAML, an unknown
    criterion, an invalid regular expression or an unknown key.
    """
    if path is None:
        text = resources.files("features").joinpath("data", _LEXICON_FILE).read_text(encoding="utf-8")
        return _parse_lexicon(text, f"features/data/{_LEXICON_FILE}")
    path = Path(path)
    return _parse_lexicon(path.read_text(encoding="utf-8"), str(path))


def __getattr__(name: str) -> Any:
    # LEXICON_VERSION is read from the data file on first use, not at import time.
    if name == "LEXICON_VERSION":
        return load_lexicon().version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------------
# One pass over the text for every entry
# ---------------------------------------------------------------------------------------------------
#
# Scanning the text once per entry costs a pass per entry (88 today), and one combined regex
# "(?=p0|p1|...)" is slower still (4-5x, experiments/bench_cues.py): Python's re cannot skip ahead on a
# lookahead, so it tries every entry at every character. Instead each entry's pattern is read once at load,
# with re's own parser, for the two characters its matches can start with (a superset: lookarounds and
# anchors are skipped; a construct not understood, a negated class, a flag such as (?i), counts as "any
# character"), and one character-class pattern finds, in a single pass, the positions where some entry
# could start. Only the entries that can start with the two characters there are tried, anchored
# (`pattern.match(text, pos)`, whose lookbehinds still see the text before pos). Positions before an
# entry's last match end are skipped: that is `finditer`'s leftmost, non-overlapping order, so the matches
# are exactly the per-entry scan's (tests/features/test_cue_single_pass.py checks it). Each entry is still
# its own pattern, so flags, named groups and backreferences need no renumbering; only patterns that can
# match the empty string are refused (`_compile_entry`): an empty match has no first character to find.

#: A prefix of a match: known characters, None where any character may stand (the prefix ends there).
_Prefix: TypeAlias = tuple[str | None, ...]
_PREFIX_LEN = 2  # characters of lookahead used to pick the entries worth trying at a position
_MAX_PREFIXES = 4096  # past this, an entry keeps only its first characters (still a superset)
_MAX_CLASS_RANGE = 256  # a wider range in a character class ([一-龥]) counts as "any character"
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)
_ZERO_WIDTH = (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT)


def _class_chars(items: Any) -> set[str] | None:
    """The characters of a parsed ``[...]`` class, or None when it is negated, a category or too wide."""
    chars: set[str] = set()
    for op, av in items:
        if op is _sre.LITERAL:
            chars.add(chr(av))
        elif op is _sre.RANGE and av[1] - av[0] < _MAX_CLASS_RANGE:
            chars.update(chr(c) for c in range(av[0], av[1] + 1))
        else:
            return None
    return chars


def _item_prefixes(op: Any, av: Any, n: int, ignore_case: bool) -> set[_Prefix]:
    """How a match of one parsed regex item can begin, up to ``n`` characters; () for zero width."""
    if op is _sre.LITERAL or op is _sre.IN:
        chars = {chr(av)} if op is _sre.LITERAL else _class_chars(av)
        return {(None,)} if chars is None or ignore_case else {(c,) for c in chars}
    if op is _sre.SUBPATTERN:
        _group, add_flags, _del_flags, items = av
        return _extend({()}, items, n, ignore_case or bool(add_flags & re.IGNORECASE))
    if op is _sre.ATOMIC_GROUP:
        return _extend({()}, av, n, ignore_case)
    if op is _sre.BRANCH:
        return set().union(*(_extend({()}, alternative, n, ignore_case) for alternative in av[1]))
    if op in _REPEATS:
        low, high, items = av
        out: set[_Prefix] = set()
        # More than n repetitions add nothing within n characters.
        for times in range(min(low, n), min(high, n) + 1):
            heads: set[_Prefix] = {()}
            for _ in range(times):
                heads = _extend(heads, items, n, ignore_case)
            out |= heads
        return out
    if op in _ZERO_WIDTH:
        return {()}  # anchors and lookarounds only narrow where a match starts: ignoring them keeps a superset
    return {(None,)}  # any character, negated literal, backreference, conditional group


def _extend(heads: set[_Prefix], items: Any, n: int, ignore_case: bool) -> set[_Prefix]:
    """``heads`` followed by the parsed sequence ``items``, each cut at ``n`` characters or at a None."""
    for op, av in items:
        if all(len(h) >= n or None in h for h in heads):
            break
        tails: dict[int, set[_Prefix]] = {}
        out: set[_Prefix] = set()
        for head in heads:
            room = n - len(head)
            if room <= 0 or None in head:
                out.add(head)
                continue
            if room not in tails:
                tails[room] = _item_prefixes(op, av, room, ignore_case)
            out.update(head + tail for tail in tails[room])
        if len(out) > _MAX_PREFIXES:
            out = {h[:1] + ((None,) if len(h) > 1 else ()) for h in out}
        heads = out
    return heads


def _known(prefix: _Prefix) -> str:
    """The characters of ``prefix`` before its first unknown one."""
    out = ""
    for c in prefix:
        if c is None:
            break
        out += c
    return out


def _starts(pattern: re.Pattern[str]) -> set[str]:
    """How the matches of ``pattern`` can begin: 0 to _PREFIX_LEN known characters each ("": anywhere)."""
    parsed = _sre_parse.parse(pattern.pattern, pattern.flags)
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    return {_known(p) for p in _extend({()}, parsed, _PREFIX_LEN, ignore_case)}


def _char_class(chars: Iterable[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"


_Match: TypeAlias = Callable[[str, int], "re.Match[str] | None"]
_Candidates: TypeAlias = tuple[tuple[int, _Match], ...]  # (entry index, entry.pattern.match)


@dataclass(frozen=True, eq=False)
class _Scanner:
    """Finds every entry's matches (as ``entry.pattern.finditer`` would) in one pass over a text."""

    starts: re.Pattern[str]  # one character where some entry may start; its pass is the only scan of the text
    by_pair: dict[str, _Candidates]  # the two characters at a position -> the entries that can start there
    by_char: dict[str, _Candidates]  # the character at a position, when its pair is not listed
    anywhere: _Candidates  # entries whose first character is unknown: tried at every position (in all of the above)
    size: int

    @classmethod
    def build(cls, entries: Sequence[_Entry]) -> _Scanner:
        pairs: dict[str, set[int]] = {}
        singles: dict[str, set[int]] = {}
        anywhere: set[int] = set()
        for k, entry in enumerate(entries):
            for start in _starts(entry.pattern):
                (pairs.setdefault(start, set()) if len(start) == 2 else
                 singles.setdefault(start, set()) if start else anywhere).add(k)

        def candidates(ks: set[int]) -> _Candidates:
            return tuple((k, entries[k].pattern.match) for k in sorted(ks | anywhere))

        by_pair = {p: candidates(ks | singles.get(p[0], set())) for p, ks in pairs.items()}
        by_char = {c: candidates(ks) for c, ks in singles.items()}
        if anywhere:
            starts = r"(?s:.)"
        elif not pairs:
            starts = _char_class(singles)
        else:  # a first character, then a second one of some pair, or a character that starts an entry alone
            follows = f"(?={_char_class({p[1] for p in pairs})})"
            firsts = _char_class({p[0] for p in pairs} | set(singles))
            starts = firsts + (f"(?:{follows}|(?<={_char_class(singles)}))" if singles else follows)
        return cls(re.compile(starts), by_pair, by_char, candidates(set()), len(entries))

    def spans(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """(start, end) of every match per entry index (entries without a match left out), in text order."""
        found: dict[int, list[tuple[int, int]]] = {}
        resume = [0] * self.size  # finditer's next search position per entry: matches never overlap
        pair, char, anywhere = self.by_pair.get, self.by_char.get, self.anywhere
        for hit in self.starts.finditer(text):
            pos = hit.start()
            for k, match in pair(text[pos:pos + 2]) or char(text[pos], anywhere):
                if pos >= resume[k] and (m := match(text, pos)):
                    resume[k] = end = m.end()
                    found.setdefault(k, []).append((pos, end))
        return found


# ---------------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------------


def _bounds(text: str, start: int, end: int, breaks: re.Pattern[str], window: int) -> tuple[int, int]:
    """[lo, hi) around text[start:end]: at most `window` characters each side, not across a break."""
    lo = max(0, start - window)
    before = [m.end() for m in breaks.finditer(text, lo, start)]
    if before:
        lo = before[-1]
    hi = min(len(text), end + window)
    after = breaks.search(text, end, hi)
    if after:
        hi = after.start()
    return lo, hi


def _accepts(entry: _Entry, text: str, start: int, end: int) -> bool:
    """False when a negation cue stands before the match in its clause, or a required cue is missing."""
    if entry.negation is not None:
        lo, _ = _bounds(text, start, end, _CLAUSE_BREAK, entry.negation_window)
        if entry.negation.search(text, lo, start):
            return False
    if entry.requires is not None:
        lo, hi = _bounds(text, start, end, _SENTENCE_BREAK, entry.window)
        if not (entry.requires.search(text, lo, start) or entry.requires.search(text, end, hi)):
            return False
    return True


def _non_overlapping(matches: list[CueMatch]) -> list[CueMatch]:
    """Earliest first, the longer one on a tie; later matches that overlap a kept one are dropped."""
    kept: list[CueMatch] = []
    for m in sorted(matches, key=lambda m: (m.start, -(m.end - m.start))):
        if not kept or m.start >= kept[-1].end:
            kept.append(m)
    return kept


def _lexicon_matches(text: str, lexicon: Lexicon) -> list[CueMatch]:
    """Accepted matches of every entry, non-overlapping per (criterion, category), grouped in entry order."""
    by_category: dict[tuple[str, str], list[CueMatch]] = {}
    found = lexicon.scanner.spans(text)
    for k in sorted(found):
        entry = lexicon.entries[k]
        for start, end in found[k]:
            if _accepts(entry, text, start, end):
                match = CueMatch(entry.criterion, entry.category, text[start:end], start, end)
                by_category.setdefault((entry.criterion, entry.category), []).append(match)
    return [m for group in by_category.values() for m in _non_overlapping(group)]


def _sort(matches: list[CueMatch]) -> list[CueMatch]:
    return sorted(matches, key=lambda m: (m.start, m.end, CRITERIA.index(m.criterion), m.category))


def _all_matches(text: str, lexicon: Lexicon) -> tuple[list[CueMatch], list[PeopleCount]]:
    """Lexicon matches plus yellow-2 matches for counts of at least MANY_PEOPLE_THRESHOLD, sorted.

    A count is the better highlight than a yellow-2 phrase inside it ("多户" in "二百多户"), so yellow-2
    phrases overlapping a count match give way to it.
    """
    counts = extract_counts(text)
    count_hits = [
        CueMatch("yellow-2", PEOPLE_COUNT_CATEGORY, text[c.start:c.end], c.start, c.end)
        for c in counts
        if c.count >= MANY_PEOPLE_THRESHOLD
    ]
    hits = [
        m for m in _lexicon_matches(text, lexicon)
        if m.criterion != "yellow-2" or not any(c.start < m.end and m.start < c.end for c in count_hits)
    ]
    return _sort(hits + count_hits), counts


def match_cues(text: str, *, lexicon: Lexicon | None = None) -> list[CueMatch]:
    """All rubric cues in ``text`` (pass ``case_text(title, body)``), sorted by start.

    Matches of one (criterion, category) never overlap; matches of different categories may (a phrase can
    be both a gas leak and a threat to life). A hit is dropped when a negation cue of its entry stands
    shortly before it in the same clause ("请问燃气泄漏报警器..."), or when its entry's second cue
    (``requires_any``) is missing from the window. Counts of at least `MANY_PEOPLE_THRESHOLD` people or
    households ("60多名工人") are reported as yellow-2 matches of category ``people_count``.
    """
    return _all_matches(text, lexicon or load_lexicon())[0]


# ---------------------------------------------------------------------------------------------------
# People counts
# ---------------------------------------------------------------------------------------------------

_CN_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
# Vague quantities, read as a conservative lower bound: "几十/数十" (some tens) -> 20, "上百" (up to a
# hundred) -> 100, "几百/数百" -> 200, and so on.
_APPROX = {
    "上百": 100, "上千": 1000, "上万": 10_000, "成百": 100, "成千": 1000,
    "几十": 20, "几百": 200, "几千": 2000, "几万": 20_000,
    "数十": 20, "数百": 200, "数千": 2000, "数万": 20_000,
}
_PEOPLE_NOUNS = (
    "农民工", "民工", "工人", "员工", "职工", "工友", "业主", "村民", "居民", "住户", "农户", "商户", "拆迁户",
    "困难户", "群众", "老百姓", "百姓", "市民", "小学生", "中学生", "大学生", "学生", "孩子", "小孩", "儿童",
    "幼儿", "婴儿", "老人", "老年人", "家长", "教师", "老师", "医生", "护士", "患者", "病人", "乘客", "旅客",
    "司机", "考生", "投资人", "投资者", "受害人", "受害者", "会员", "客户", "消费者", "储户", "股民", "租户",
    "摊贩", "商贩", "退休人员", "退休职工", "下岗职工", "人员", "同学", "家庭", "人家", "村组", "人",
)
_NOUN_ALT = "|".join(sorted(_PEOPLE_NOUNS, key=len, reverse=True))
# Units; 人 not when it starts 人民 / 人次 / 人均 / 人口 ...; 户 not in 户口 / 户籍 / 户型; 名 not in 名额 / 名次;
# 位 not in 位置 / 位数. 个 / 家 / 号 count people only when a people noun follows (checked in code).
_UNIT_ALT = r"名(?![额次称单])|位(?![置数于])|户(?![口籍型外头主])|人(?![民次均工为事口大])|口人|个|家|号"
_NUMBER = (
    r"(?P<approx>上百|上千|上万|成百|成千|几十|几百|几千|几万|数十|数百|数千|数万)"
    r"|(?P<arabic>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?P<amult>[万千百])?"
    r"|(?P<cn>[零〇一二两三四五六七八九十百千万]+)"
)
_COUNT = re.compile(
    # Every count starts with one of these characters (a prefix word or a number): the lookahead turns
    # most positions away with one character test instead of the lookbehind and the alternations below
    # (3.5x faster on the TipDM messages, the same matches).
    r"(?=[近约大将超逾上成几数\d零〇一二两三四五六七八九十百千万])"
    r"(?<![第\d.零〇一二两三四五六七八九十百千万几数A-Za-z])"
    r"(?:近|约|大约|将近|超过|逾)?"
    rf"(?:{_NUMBER})"
    r"(?P<mod>多|余|来|几)?"
    rf"(?P<unit>{_UNIT_ALT})?"
    rf"(?P<noun>{_NOUN_ALT})?"
)
_IDIOMS = ("千家万户", "万人空巷", "千千万万", "千方百计", "百家", "十全十美", "一家人")
_MAX_COUNT = 100_000_000


def _cn_number(s: str) -> int | None:
    """Chinese numeral to int: 三十 -> 30, 两百 -> 200, 二十七 -> 27, 一千五 -> 1500, 百 -> 100, 一万 -> 10000."""
    total, section, digit, last_unit = 0, 0, None, 0
    for ch in s:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            section += (1 if digit is None else digit) * _CN_UNITS[ch]
            last_unit, digit = _CN_UNITS[ch], None
        elif ch == "万":
            section += digit or 0
            total += (section or 1) * 10_000
            section, digit, last_unit = 0, None, 10_000
        else:
            return None
    if digit is not None:
        # "一千五" means 1500: a trailing digit right after a unit counts in the next lower unit.
        section += digit * (last_unit // 10 if last_unit >= 100 else 1)
    value = total + section
    return value or None


def _count_value(m: re.Match[str]) -> int | None:
    if m.group("approx"):
        return _APPROX[m.group("approx")]
    if m.group("arabic"):
        digits = m.group("arabic").replace(",", "")
        if len(digits.split(".")[0]) > 6:  # phone numbers, IDs, amounts: not a count of people
            return None
        value = float(digits)
        value *= {"万": 10_000, "千": 1000, "百": 100, None: 1}[m.group("amult")]
        return int(value)
    return _cn_number(m.group("cn"))


def extract_counts(text: str) -> list[PeopleCount]:
    """Numbers of people or households that ``text`` names, in order of appearance.

    "60多名工人" -> (60, 名, 工人); "200多户" -> (200, 户); "三十多户" -> 30; "两百多人" -> 200;
    "一千余人" -> 1000; "一百来号人" -> 100. Counts are a conservative lower bound: "X多 / X余 / X来" read
    as X, "十几" as 10, and vague quantities as the smallest plausible value: "几十 / 数十" -> 20,
    "几百 / 数百" -> 200, "上百" -> 100, "上千" -> 1000, "近百" -> 100.

    A number counts only when a people unit (人 名 位 户 口人, or 个 / 家 / 号 followed by a people noun)
    or a people noun follows it; an Arabic number directly before a noun also needs 多 / 余 / 来, so a room
    number ("1003业主") is not a count. Years, amounts, buildings, ranks (第3名) and numbers of more than
    six digits (phone and ID numbers) are ignored.
    """
    idiom_spans = [(m.start(), m.end()) for idiom in _IDIOMS for m in re.finditer(idiom, text)]
    out: list[PeopleCount] = []
    for m in _COUNT.finditer(text):
        unit, noun = m.group("unit") or "", m.group("noun")
        if not unit and not noun:
            continue
        if unit in ("个", "家", "号") and not noun:
            continue
        if noun == "人" and unit not in ("个", "号"):
            if not unit:
                continue  # "470万人口": 人 starts another word
            noun = None
        if not unit and m.group("arabic") and not m.group("mod") and not m.group("amult"):
            continue  # "3栋1003业主": a room number, not a count
        if any(s < m.end() and m.start() < e for s, e in idiom_spans):
            continue
        value = _count_value(m)
        if value is None or value <= 0 or value > _MAX_COUNT:
            continue
        end = m.end("noun") if noun else m.end("unit") if unit else m.end()
        out.append(PeopleCount(count=value, unit=unit, noun=noun, start=m.start(), end=end))
    return out


# ---------------------------------------------------------------------------------------------------
# Rules and features
# ---------------------------------------------------------------------------------------------------


def _level(criterion: str) -> str:
    return criterion.split("-", 1)[0]


def _effective_criteria(matches: Sequence[CueMatch], many_people: bool, lexicon: Lexicon) -> list[str]:
    """The criterion each match supports; red-3 money cues without many people support yellow-1."""
    out = []
    for m in matches:
        if m.criterion == "red-3" and not many_people and lexicon.needs_many_people(m.criterion, m.category):
            out.append("yellow-1")
        else:
            out.append(m.criterion)
    return out


def _many_people(matches: Sequence[CueMatch], counts: Sequence[PeopleCount]) -> bool:
    return any(c.count >= MANY_PEOPLE_THRESHOLD for c in counts) or any(m.criterion == "yellow-2" for m in matches)


def _rule(matches: list[CueMatch], counts: list[PeopleCount], lexicon: Lexicon) -> tuple[str, str | None]:
    supported = set(_effective_criteria(matches, _many_people(matches, counts), lexicon))
    for criterion in CRITERIA:  # red-1 ... red-4, then yellow-1 ... yellow-4
        if criterion in supported:
            return _level(criterion), criterion
    return "green", None


def rule_risk_level(text: str, *, lexicon: Lexicon | None = None) -> tuple[str, str | None, list[CueMatch]]:
    """The cue-rule baseline: ``(level, criterion, matches)`` for ``text`` (pass ``case_text(title, body)``).

    The level is the highest one whose criterion has a non-negated match (red-1 before red-2 ... before
    yellow-4 when several match); green with criterion None when nothing matches. A red-3 money-loss cue
    (wage arrears, overdue housing, fundraising fraud: lexicon entries marked ``needs_many_people``) is red
    only when the text also says that many people are affected, a count of at least
    `MANY_PEOPLE_THRESHOLD` or a yellow-2 phrase; otherwise it supports yellow-1. ``matches`` are all cues
    found (as `match_cues` returns them), for the reviewer.

    This is the baseline the learned risk model must beat on the annotated cases, and the weak labeler
    for training rows that carry no reviewed ``risk_level``.
    """
    lexicon = lexicon or load_lexicon()
    matches, counts = _all_matches(text, lexicon)
    level, criterion = _rule(matches, counts, lexicon)
    return level, criterion, matches


#: Names of `cue_features`, in column order of `RiskCueVectorizer`. Stable: the risk model is trained on
#: them by name.
#:
#: - ``cue_red_1`` ... ``cue_yellow_4``: number of matches per rubric criterion (``match_cues``; yellow-2
#:   includes ``people_count`` matches);
#: - ``rule_level``: the cue-rule level, 2 red / 1 yellow / 0 green (``rule_risk_level``);
#: - ``people_max_log1p``: log(1 + the largest count of people or households, ``extract_counts``), 0 if none;
#: - ``has_many_people``: 1.0 when some count is at least ``MANY_PEOPLE_THRESHOLD`` (10 people or households);
#: - ``exclamation_count``: number of "!" / "！";
#: - ``question_count``: number of "?" / "？" (consultations ask);
#: - ``text_len_log1p``: log(1 + number of characters).
FEATURE_NAMES: tuple[str, ...] = (
    *(f"cue_{c.replace('-', '_')}" for c in CRITERIA),
    "rule_level",
    "people_max_log1p",
    "has_many_people",
    "exclamation_count",
    "question_count",
    "text_len_log1p",
)
_LEVEL_SCORE = {"red": 2.0, "yellow": 1.0, "green": 0.0}


def cue_features(text: str, *, lexicon: Lexicon | None = None) -> dict[str, float]:
    """Numeric cue features of ``text`` (pass ``case_text(title, body)``), keyed by `FEATURE_NAMES`."""
    lexicon = lexicon or load_lexicon()
    matches, counts = _all_matches(text, lexicon)
    level, _ = _rule(matches, counts, lexicon)
    per_criterion = dict.fromkeys(CRITERIA, 0)
    for m in matches:
        per_criterion[m.criterion] += 1
    biggest = max((c.count for c in counts), default=0)
    features = {f"cue_{c.replace('-', '_')}": float(n) for c, n in per_criterion.items()}
    features.update(
        rule_level=_LEVEL_SCORE[level],
        people_max_log1p=math.log1p(biggest),
        has_many_people=float(biggest >= MANY_PEOPLE_THRESHOLD),
        exclamation_count=float(text.count("!") + text.count("！")),
        question_count=float(text.count("?") + text.count("？")),
        text_len_log1p=math.log1p(len(text)),
    )
    return {name: features[name] for name in FEATURE_NAMES}


class RiskCueVectorizer(TransformerMixin, BaseEstimator):
    """`cue_features` of ``case_text(title, body)`` for each case, as a dense float32 array.

    Input: a DataFrame with ``title`` and ``body`` columns, or a sequence of (title, body) pairs. Stateless
    apart from the lexicon version recorded by `fit`: transforming with another lexicon version raises,
    because the model downstream was trained on the features of the recorded one.
    """

    def __sklearn_tags__(self) -> Tags:
        """Cases of text in, not a numeric matrix."""
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags

    def fit(self, X: Any, y: Iterable[Any] | None = None) -> RiskCueVectorizer:
        lexicon = load_lexicon()
        self.lexicon_version_ = lexicon.version
        self.feature_names_out_ = np.asarray(FEATURE_NAMES, dtype=object)
        self.n_features_out_ = len(FEATURE_NAMES)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "lexicon_version_")
        lexicon = load_lexicon()
        if lexicon.version != self.lexicon_version_:
            raise ValueError(
                f"RiskCueVectorizer was fitted with risk lexicon version {self.lexicon_version_!r} but version "
                f"{lexicon.version!r} is installed; retrain the model"
            )
        pairs = as_pairs(X)
        out = np.zeros((len(pairs), len(FEATURE_NAMES)), dtype=np.float32)
        for i, (title, body) in enumerate(pairs):
            row = cue_features(case_text(title, body), lexicon=lexicon)
            out[i] = [row[name] for name in FEATURE_NAMES]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()
