"""The one-pass cue matcher (`Lexicon.scanner`) finds exactly what one `finditer` per lexicon entry found.

`reference_matches` is the per-entry scan that `features.risk_cues._lexicon_matches` replaced, kept here
(and only here) as the oracle: the same `CueMatch` list in the same order on the demo data, on generated
texts made of lexicon words, and on long runs of one character. Entries the scanner reads only roughly
(inline flags, backreferences, a first character it cannot know) must still match exactly; an entry that
can match the empty string is refused at load. All texts are made up or come from the shipped demo data.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import risk_cues
from features.risk_cues import CueMatch, Lexicon, load_lexicon
from features.text import case_text
from tests.fuzz.test_linear_time import CLASSES as LINEAR_CLASSES

ROOT = Path(__file__).resolve().parents[2]
DEMO_CSV = ROOT / "training" / "demo_data" / "grievances.csv"
LEXICON_YAML = ROOT / "features" / "data" / "risk_lexicon.yaml"


def reference_spans(text: str, lexicon: Lexicon) -> dict[int, list[tuple[int, int]]]:
    """Every entry's matches, one `finditer` pass per entry (the scan before the single pass)."""
    found = {k: [m.span() for m in e.pattern.finditer(text)] for k, e in enumerate(lexicon.entries)}
    return {k: spans for k, spans in found.items() if spans}


def reference_matches(text: str, lexicon: Lexicon) -> list[CueMatch]:
    """`_lexicon_matches` as it was: per entry finditer, negation / requires_any windows, non-overlapping."""
    by_category: dict[tuple[str, str], list[CueMatch]] = {}
    for e in lexicon.entries:
        for m in e.pattern.finditer(text):
            start, end = m.span()
            if start == end:
                continue
            if e.negation is not None:
                lo, _ = risk_cues._bounds(text, start, end, risk_cues._CLAUSE_BREAK, e.negation_window)
                if e.negation.search(text, lo, start):
                    continue
            if e.requires is not None:
                lo, hi = risk_cues._bounds(text, start, end, risk_cues._SENTENCE_BREAK, e.window)
                if not (e.requires.search(text, lo, start) or e.requires.search(text, end, hi)):
                    continue
            by_category.setdefault((e.criterion, e.category), []).append(
                CueMatch(e.criterion, e.category, m.group(), start, end)
            )
    return [m for group in by_category.values() for m in risk_cues._non_overlapping(group)]


def assert_same(text: str, lexicon: Lexicon) -> None:
    assert lexicon.scanner.spans(text) == reference_spans(text, lexicon), text[:200]
    assert risk_cues._lexicon_matches(text, lexicon) == reference_matches(text, lexicon), text[:200]


# -- (a) the demo data ------------------------------------------------------------------------------------


def demo_texts() -> list[str]:
    frame = pd.read_csv(DEMO_CSV, dtype=str, keep_default_na=False)
    return [case_text(t, b) for t, b in zip(frame["title"], frame["body"], strict=True)]


def test_every_demo_text_matches_as_the_per_entry_scan() -> None:
    lexicon = load_lexicon()
    texts = demo_texts()
    assert len(texts) > 500
    got = [risk_cues._lexicon_matches(t, lexicon) for t in texts]
    assert [i for i, t in enumerate(texts) if got[i] != reference_matches(t, lexicon)] == []
    assert sum(map(bool, got)) > len(texts) // 4  # not a vacuous comparison: cues do fire
    assert [i for i, t in enumerate(texts) if lexicon.scanner.spans(t) != reference_spans(t, lexicon)] == []


# -- (b) generated texts of lexicon words ---------------------------------------------------------------


@lru_cache(maxsize=1)
def lexicon_words() -> tuple[str, ...]:
    """Literal phrases, cue words and the Chinese / Latin / digit runs inside the regexes (texts are also
    built from strings that hypothesis generates to match each entry's regex)."""
    doc = yaml.safe_load(LEXICON_YAML.read_text(encoding="utf-8"))
    words: set[str] = {w for ws in doc["word_sets"].values() for w in ws}
    for entries in doc["criteria"].values():
        for entry in entries:
            for key in ("phrases", "requires_any", "negations"):
                words.update(w for w in entry.get(key, []) if not w.startswith("@"))
            if "phrase" in entry:
                words.add(entry["phrase"])
            if "regex" in entry:
                words.update(re.findall(r"[\u4e00-\u9fffA-Za-z0-9]+", entry["regex"]))
    return tuple(sorted(words))


SEPARATORS = (",", "，", "。", "!", "！", "?", "？", ";", "；", "\n", " ", "、", "的", "了", "多名")
pieces = st.one_of(
    st.sampled_from([e.pattern for e in load_lexicon().entries]).flatmap(lambda p: st.from_regex(p, fullmatch=True)),
    st.sampled_from(lexicon_words()),
    st.sampled_from(lexicon_words()).map(lambda w: w[: len(w) // 2 + 1]),  # cut words: near misses
    st.sampled_from(SEPARATORS),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=4),
    st.text(st.sampled_from("0123456789一二三十百CDPpx"), min_size=1, max_size=3),
)
texts_of_words = st.lists(pieces, max_size=60).map("".join)


@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(texts_of_words)
def test_generated_texts_match_as_the_per_entry_scan(text: str) -> None:
    assert_same(text, load_lexicon())


# -- (c) adversarial texts: long runs -------------------------------------------------------------------

RUNS = ["a", "燃", "，", ",", "1", "三", "被", "电梯", "燃气", "多次", "拖欠", "工人们", "被困", "a1", "。\n",
        "燃气 泄漏"]


@pytest.mark.parametrize("unit", RUNS)
def test_long_runs_match_as_the_per_entry_scan(unit: str) -> None:
    lexicon = load_lexicon()
    run = unit * (6000 // len(unit))
    for text in (run, "燃气" + run + "泄漏", run + "电梯困人" + run, "拖欠" + run[:30] + "工资" + run):
        assert_same(text, lexicon)


def _seconds(lexicon: Lexicon, text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        risk_cues._lexicon_matches(text, lexicon)
        best = min(best, time.perf_counter() - started)
    return best


# The character classes of the linear-time sweep in tests/fuzz, and runs of characters that start entries.
LINEAR_UNITS = sorted(set(LINEAR_CLASSES.values()) | {"a", "燃", "，", "被", "电梯", "燃气", "多次", "拖欠"})


@pytest.mark.parametrize("unit", LINEAR_UNITS)
def test_the_single_pass_is_linear_on_long_runs(unit: str) -> None:
    """4x the text takes about 4x the time (16x would be quadratic); small times are noise, hence the floor.
    The scanner's own pattern is not a lexicon entry, so the pattern sweep in tests/fuzz does not list it."""
    lexicon = load_lexicon()
    n = 25_000
    short, long = _seconds(lexicon, unit * (n // len(unit))), _seconds(lexicon, unit * (4 * n // len(unit)))
    assert long < 8 * short + 0.05, (short, long)
    assert long < 2.0, long


# -- entries the scanner can only read roughly still match exactly ------------------------------------

ROUGH_ENTRIES = """\
version: "t"
defaults:
  negations: []
criteria:
  red-1:
    - category: ignore_case
      regex: '(?i)gas ?leak'
    - category: local_flag
      regex: 'x(?i:ab)c'
    - category: backreference
      regex: '(燃|煤)气\\1'
    - category: named_backreference
      regex: '(?P<w>漏|泄)(?P=w)'
    - category: any_first
      regex: '.燃气'
    - category: digits_first
      regex: '\\d+名工人'
    - category: negated_class
      regex: '[^，,]{2}泄漏'
    - category: wide_range
      regex: '[一-龥]{1,2}坍塌'
    - category: conditional
      regex: '(<)?电梯(?(1)>|困人)'
    - category: lookbehind_first
      regex: '(?<![无零])噪音'
    - category: lookaround_first
      regex: '(?<=燃)(?=气)气泄漏'
    - category: single_char
      phrases: [砸, 燃气泄漏]
    - category: possessive
      regex: '(?:拖欠)++工资'
"""

ROUGH = risk_cues._parse_lexicon(ROUGH_ENTRIES, "test")
rough_pieces = st.one_of(
    st.sampled_from([e.pattern for e in ROUGH.entries]).flatmap(lambda p: st.from_regex(p, fullmatch=True)),
    st.sampled_from(["gas", "GAS", "Gas leak", "gasleak", "LEAK", "ga", "lea", "ſ", "K", "\u212a", "xabc", "xABc",
                     "XAbC", "燃气燃", "煤气煤", "燃气煤", "漏漏", "漏泄", "名工人", "3名工人", "泄漏", "坍塌",
                     "<电梯>", "<电梯困人", "无噪音", "噪音", "燃气泄漏", "气泄漏", "砸", "燃气泄漏", "拖欠拖欠工资"]),
    st.sampled_from(SEPARATORS),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=3),
    st.text(st.sampled_from("0123456789aAbBcCxX<> "), min_size=1, max_size=3),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rough_pieces, max_size=30).map("".join))
def test_entries_with_flags_backreferences_and_unknown_first_characters_match_exactly(text: str) -> None:
    assert_same(text, ROUGH)


def test_an_entry_with_an_unknown_first_character_makes_every_position_a_candidate() -> None:
    assert ROUGH.scanner.starts.pattern == r"(?s:.)"
    packaged = load_lexicon().scanner
    assert not packaged.anywhere  # the packaged lexicon never needs that slow path
    assert packaged.starts.match("燃气") and not packaged.starts.match("燃") and not packaged.starts.match("ab")


# -- what the scanner cannot reproduce is refused at load ----------------------------------------------


def entry_yaml(regex: str) -> str:
    return f"version: \"t\"\ncriteria:\n  red-1:\n    - category: gas_leak\n      phrases: [燃气泄漏]\n" \
           f"    - category: gas_leak\n      regex: '{regex}'\n"


@pytest.mark.parametrize("regex", ["(?<=燃气)(泄漏)?", "泄漏|(?=燃气)", "(?<=燃)(?:气泄漏)*", r"\b"])
def test_an_entry_that_can_match_the_empty_string_is_refused_naming_it(regex: str, tmp_path: Path) -> None:
    """An empty match has no first character for the scanner to find, so such an entry is refused, even
    where the whole-string check (`fullmatch("")`) alone let it through."""
    with pytest.raises(ValueError, match=r"risk lexicon entry red-1\[1\] \(gas_leak\): .*empty string"):
        risk_cues._parse_lexicon(entry_yaml(regex), "test")
    path = tmp_path / "lexicon.yaml"
    path.write_text(entry_yaml(regex), encoding="utf-8")
    with pytest.raises(ValueError, match=r"red-1\[1\] \(gas_leak\)"):
        load_lexicon(path)
