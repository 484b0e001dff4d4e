"""A `PreparedCase` holds exactly what the per-component helpers of `features.text` give."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.prepared import PreparedCase, prepare
from features.text import case_text, case_tokens, mask_personal_data, normalise

DEMO = Path(__file__).resolve().parents[2] / "training" / "demo_data" / "grievances.csv"


def _assert_same(title: object, body: object) -> PreparedCase:
    case = prepare(title, body)
    t = "" if title is None or (isinstance(title, float) and title != title) else str(title)
    b = "" if body is None or (isinstance(body, float) and body != body) else str(body)
    assert case.text == case_text(t, b)
    assert list(case.tokens) == case_tokens(t, b)
    assert case.title == normalise(t) and case.body == normalise(b)
    assert case.title_masked == mask_personal_data(normalise(t))
    return case


def test_every_demo_case_prepares_to_the_helpers_text_and_tokens() -> None:
    frame = pd.read_csv(DEMO, dtype=str, keep_default_na=False)
    assert len(frame) > 100
    for title, body in zip(frame["title"], frame["body"], strict=True):
        _assert_same(title, body)


@pytest.mark.parametrize(
    ("title", "body"),
    [
        ("", ""),
        (None, "只有正文"),
        ("只有标题", None),
        (float("nan"), "正文"),
        ("电话13812345678", "13912345678还有"),  # numbers at both ends of the separator
        ("身份证11010519491231002X", "0731-88888888"),
        ("  \u200b标题\t\n", "\u3000正文\x00"),
    ],
)
def test_edge_cases_prepare_like_the_helpers(title: object, body: object) -> None:
    _assert_same(title, body)


_PIECES = st.sampled_from(["1", "3", "8", "0", "X", "-", " ", "。", "燃气", "泄漏", "１", "+86", "\n", "工人", "，"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join), st.lists(_PIECES, max_size=30).map("".join))
def test_masking_the_parts_apart_equals_masking_the_joined_text(title: str, body: str) -> None:
    _assert_same(title, body)


def test_a_prepared_case_cannot_be_changed() -> None:
    case = prepare("标题", "正文")
    with pytest.raises(AttributeError):
        case.title = "x"  # type: ignore[misc]
