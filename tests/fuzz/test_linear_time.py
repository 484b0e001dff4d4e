"""Every pattern and per-case text step in `features` and `models` runs in linear time on hostile text.

A regular expression that backtracks over a long run (a number started at every digit of a 20,000-digit
title, a place name walked back over 20,000 路) runs in one C call that holds the GIL: the whole server
stalled for 70 s. These tests feed each pattern and each step 100,000 characters of each character class.
The budgets are generous on purpose: linear work on 100,000 characters takes milliseconds for a pattern and
about a second for jieba, while the quadratic versions took minutes. Each check runs in a child process
that is killed at the budget, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import importlib
import multiprocessing
import pkgutil
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import features
import models

N = 100_000
#: One unit per character class; each is repeated to N characters.
CLASSES = {
    "digits": "1",
    "chinese numerals": "三",
    "wan": "万",
    "road": "路",
    "punctuation": "，",
    "spaces": "1 ",
    "decimal dots": "1.",
    "letters and digits": "a1",
    "road numbers": "长宁路1号",
    "mixed": "1路三，a .元万段号kV",
}
PATTERN_BUDGET = 1.0  # seconds per pattern on N characters
STEP_BUDGET = 10.0  # seconds per text step on N characters


def _text(unit: str, n: int = N) -> str:
    return (unit * (n // len(unit) + 1))[:n]


def all_patterns() -> dict[str, re.Pattern[str]]:
    """Every compiled pattern at module level in `features` and `models`, and every risk-lexicon pattern."""
    found: dict[str, re.Pattern[str]] = {}
    for package in (features, models):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                    found[f"{info.name}.{name}"] = value
    from features.risk_cues import load_lexicon

    lexicon = load_lexicon()
    found["lexicon scanner.starts"] = lexicon.scanner.starts  # the one pass that finds where cues may start
    for entry in lexicon.entries:
        for part in ("pattern", "requires", "negation"):
            pattern = getattr(entry, part)
            if pattern is not None:
                found[f"lexicon {entry.name}.{part}"] = pattern
    return found


def _time_patterns(unit: str) -> dict[str, float]:
    text = _text(unit)
    seconds = {}
    for name, pattern in all_patterns().items():
        start = time.perf_counter()
        for _ in pattern.finditer(text):
            pass
        seconds[name] = time.perf_counter() - start
    return seconds


def _steps() -> dict[str, Callable[[str], object]]:
    import pandas as pd

    from features.places import extract_places
    from features.risk_cues import extract_counts, match_cues, rule_risk_level
    from features.text import case_text, normalise, tokenise
    from models.hotspots import HotspotConfig, case_terms
    from models.risk import risk_features
    from models.risk.text_score import CHAR_MARK, CHAR_NGRAMS, DOC_SEPARATOR, text_doc, text_grams
    from models.risk.text_terms import TermIndex

    config = HotspotConfig()
    terms = TermIndex({"路": 0, "路 路": 1, f"{CHAR_MARK}路路": 2, f"{CHAR_MARK}1路": 3, f"{CHAR_MARK}a1路": 4},
                      CHAR_MARK, CHAR_NGRAMS, 200)
    return {
        "normalise": normalise,
        "case_text": lambda t: case_text(t, t),
        "tokenise": tokenise,
        "extract_places": extract_places,
        "match_cues": match_cues,
        "extract_counts": extract_counts,
        "rule_risk_level": rule_risk_level,
        "text_grams": lambda t: text_grams(text_doc(tokenise(t), t)),
        "text_terms": lambda t: terms.counts([text_doc(tokenise(t), t)], DOC_SEPARATOR),
        "case_terms": lambda t: case_terms(t, t, config),
        "risk_features": lambda t: risk_features(pd.DataFrame({"title": [t], "body": [t]}), None, []),
    }


def _time_steps(text: str) -> dict[str, float]:
    seconds = {}
    for name, step in _steps().items():
        step("预热")  # jieba's dictionary loads once per process; not the step's cost
        start = time.perf_counter()
        step(text)
        seconds[name] = time.perf_counter() - start
    return seconds


class _Child:
    """One spawned worker process, reused across the tests (spawned, not forked: pytest's process has
    threads, and a fork can copy a lock one of them holds); killed and replaced when a check overruns."""

    pool: Any = None

    @classmethod
    def run(cls, function: Callable[..., object], *args: object, timeout: float) -> object:
        if cls.pool is None:
            cls.pool = multiprocessing.get_context("spawn").Pool(1)
        result = cls.pool.apply_async(function, args)
        try:
            return result.get(timeout=timeout)
        except multiprocessing.TimeoutError:
            cls.pool.terminate()
            cls.pool = None
            pytest.fail(f"{function.__name__}{args!r:.80} did not finish within {timeout:.0f} s: not linear")


@pytest.fixture(scope="module", autouse=True)
def _stop_child() -> Iterator[None]:
    yield
    if _Child.pool is not None:
        _Child.pool.terminate()
        _Child.pool = None


def _in_child(function: Callable[..., object], *args: object, timeout: float) -> object:
    """Run ``function(*args)`` in the worker process, failing the test after ``timeout`` seconds."""
    return _Child.run(function, *args, timeout=timeout)


def test_every_module_and_lexicon_pattern_is_found() -> None:
    """The sweep below covers what it claims: the known offenders and the lexicon are in it."""
    names = all_patterns()
    assert "models.risk.features._MONEY" in names
    assert "features.places._POWER_LINE" in names
    assert "features.places._ROAD_TAIL" in names
    assert sum(name.startswith("lexicon ") for name in names) > 50


@pytest.mark.parametrize("unit", CLASSES.values(), ids=CLASSES.keys())
def test_every_pattern_is_linear_on_long_runs(unit: str) -> None:
    seconds = _in_child(_time_patterns, unit, timeout=120)
    assert isinstance(seconds, dict)
    slow = {name: round(s, 2) for name, s in seconds.items() if s > PATTERN_BUDGET}
    assert not slow, f"patterns over {PATTERN_BUDGET} s on {N:,} characters: {slow}"


@pytest.mark.parametrize("unit", CLASSES.values(), ids=CLASSES.keys())
def test_every_text_step_is_linear_on_long_runs(unit: str) -> None:
    seconds = _in_child(_time_steps, _text(unit), timeout=STEP_BUDGET * 4)
    assert isinstance(seconds, dict) and set(seconds) == set(_steps())
    slow = {name: round(s, 1) for name, s in seconds.items() if s > STEP_BUDGET}
    assert not slow, f"steps over {STEP_BUDGET} s on {N:,} characters: {slow}"


@settings(max_examples=5, deadline=None)  # each example runs in a child process; its steps have STEP_BUDGET
@given(st.lists(st.tuples(st.sampled_from(sorted(CLASSES.values())), st.integers(1, 20_000)), min_size=2, max_size=8))
def test_every_text_step_stays_linear_on_runs_of_mixed_classes(runs: list[tuple[str, int]]) -> None:
    """Runs of different classes side by side (digits after 路, numerals after digits) within one text."""
    text = "".join(_text(unit, n) for unit, n in runs)[:N]
    seconds = _in_child(_time_steps, text, timeout=STEP_BUDGET * 4)
    assert isinstance(seconds, dict)
    slow = {name: round(s, 1) for name, s in seconds.items() if s > STEP_BUDGET}
    assert not slow, f"steps over {STEP_BUDGET} s: {slow}"
