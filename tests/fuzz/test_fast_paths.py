"""The fast paths of the hot-issue detector and the tokeniser give what their plain formulation gives, bit for
bit: each reference below is the straightforward code the fast path replaced (issue 15: batch scoring
must stay identical while it gets cheaper)."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features import places, tokenizer
from features.prepared import BODY_HEAD_CHARS, WORD_BOUNDARIES, prepare
from features.risk_cues import _COUNT
from features.text import _ID_CARD, _LANDLINE, _PHONE, _TOKEN_KEEP, case_text, stop_words, tokenise
from features.tokenizer import segmenter
from models.hotspots import HotspotConfig, HotspotDetector, _Burst, _dot, _Member, _terms

# Tokens as the segmenter hands them over: single CJK characters, words, single ASCII characters, odd ones.
TOKENS = st.lists(
    st.one_of(
        st.sampled_from(["御", "景", "湾", "堵", "臭", "漏", "a", "1", "Z", "-", "\u4e00", "\u9fff", "中\n", "·"]),
        st.sampled_from(["小区", "物业", "燃气泄漏", "58车贷", "110kV", "ab", "12", "é"]),
        st.text(max_size=3),
    ),
    max_size=40,
)


def _terms_reference(tokens: list[str]) -> list[str]:
    single = re.compile(r"^[\u4e00-\u9fff]$")
    out: list[str] = []
    run: list[str] = []
    for token in tokens:
        if single.match(token):
            run.append(token)
            out.append(token)
            continue
        if len(run) >= 2:
            out.append("".join(run))
        run = []
        if len(token) > 1 or not token.isascii():
            out.append(token)
    if len(run) >= 2:
        out.append("".join(run))
    return out


@given(TOKENS)
def test_terms_equal_the_token_by_token_reading(tokens: list[str]) -> None:
    assert _terms(tokens) == _terms_reference(tokens)
    assert _terms(tuple(tokens)) == _terms_reference(tokens)
    assert _terms(iter(tokens)) == _terms_reference(tokens)


# Text rich in what district names and lines are made of: suffix characters, anonymised names, digits.
PLACE_TEXT = st.lists(
    st.one_of(
        st.sampled_from(list("市区县镇乡省道街新开发经高自治场委民政府级小社景我在的A3K9路线号高压电kV万伏千 。\n")),
        st.sampled_from(
            ["A市", "A3区", "K9县", "青林区", "月亮岛街道", "经开区", "110kV", "11万伏", "高压线", "地铁2号线"]
        ),
        st.sampled_from(["312路", "公交车", "二号线", "黄花镇", "西地省", "政府", "超市", "小区"]),
    ),
    max_size=40,
).map("".join)


@given(PLACE_TEXT)
def test_district_search_finds_what_finditer_finds(text: str) -> None:
    fast = [(m.start(), m.end()) for m in places._district_matches(text)]
    assert fast == [(m.start(), m.end()) for m in places._DISTRICT.finditer(text)]


def _lines_reference(text: str) -> list[places.Place]:
    found: list[places.Place] = []
    for m in places._POWER_LINE.finditer(text):
        line = m.group("line")
        kv = places._kv(m.group("volt"), m.group("unit"))
        found.append(
            places.Place(
                f"{kv}{m.group('mid')}{'高压线' if line in ('线', '电线') else line}", "line", m.start(), m.end()
            )
        )
    for m in places._HIGH_VOLTAGE.finditer(text):
        found.append(places.Place("高压线", "line", m.start(), m.end()))
    for m in places._METRO_LINE.finditer(text):
        num = m.group("num")
        found.append(
            places.Place(f"地铁{num if num.isdigit() else places._cn_number(num)}号线", "line", m.start(), m.end())
        )
    for m in places._BUS_LINE.finditer(text):
        found.append(places.Place(f"{m.group('num')}路", "line", m.start(), m.end()))
    return found


@given(PLACE_TEXT)
def test_lines_skip_only_texts_without_their_literal(text: str) -> None:
    assert places._lines(text) == _lines_reference(text)


@given(
    st.lists(
        st.one_of(st.text(max_size=6), st.sampled_from(["的", "了", "，", " ", "燃气", "泄漏", "a", "_"])), max_size=30
    ).map("".join)
)
def test_tokenise_keeps_what_the_plain_filter_keeps(text: str) -> None:
    stops = stop_words()
    assert tokenise(text) == [t for t in segmenter()(text) if t not in stops and _TOKEN_KEEP.search(t)]


WEIGHTS = st.dictionaries(
    st.sampled_from([f"t{i}" for i in range(30)]), st.floats(min_value=0.0, max_value=2.0, allow_nan=False), max_size=30
)


@given(WEIGHTS, WEIGHTS)
def test_dot_over_shared_terms_equals_the_full_sum(weights: dict[str, float], centroid: dict[str, float]) -> None:
    position = {t: i for i, t in enumerate(weights)}
    full = sum([w * centroid.get(t, 0.0) for t, w in weights.items()])
    assert _dot(weights, centroid, position) == full
    assert math.copysign(1.0, _dot(weights, centroid, position)) == math.copysign(1.0, full)


COUNTS = st.lists(
    st.dictionaries(
        st.sampled_from([f"w{i}" for i in range(60)]),
        st.one_of(st.integers(1, 5), st.sampled_from([2.0, 3.0, 4.5])),
        max_size=60,
    ),
    min_size=1,
    max_size=8,
)


@given(COUNTS, st.integers(1, 45))
def test_weights_equal_the_sorted_key_formulation(cases: list[dict[str, float]], max_terms: int) -> None:
    detector = HotspotDetector(HotspotConfig(max_terms=max_terms, index_terms=1))
    df: Counter[str] = Counter()
    n = 0
    for counts in cases:
        got = detector._weigh(counts)
        if not counts:
            assert got == {}
            continue
        n += 1
        df.update(counts.keys())
        raw = {t: (1.0 + math.log(tf)) * (math.log((1 + n) / (1 + df[t])) + 1.0) for t, tf in counts.items()}
        top = sorted(raw.items(), key=lambda kv: (-kv[1], kv[0]))[:max_terms]
        norm = math.sqrt(math.fsum(w * w for _, w in top))
        want = {t: round(w / norm, 6) for t, w in top}
        assert list(got.items()) == list(want.items())  # the same weights in the same order
    assert detector._df == df


@given(st.lists(WEIGHTS, min_size=1, max_size=6), st.data())
def test_centroid_norm_follows_adds_and_removals(members: list[dict[str, float]], data: st.DataObject) -> None:
    from datetime import datetime

    burst = _Burst("hot-1", datetime(2024, 1, 1), 1)
    for i, weights in enumerate(members):
        burst.add(_Member(f"c{i}", datetime(2024, 1, 1), None, None, weights, None, i))
        assert burst.norm == math.sqrt(math.fsum(v * v for v in burst.centroid.values()))
    gone = data.draw(st.lists(st.sampled_from(sorted(burst.members)), unique=True, max_size=len(burst.members) - 1))
    burst.remove(gone)
    centroid: dict[str, float] = {}
    for member in burst.members.values():
        for term, weight in member.weights.items():
            centroid[term] = centroid.get(term, 0.0) + weight
    assert burst.centroid == centroid
    assert burst.norm == math.sqrt(math.fsum(v * v for v in centroid.values()))


# Text rich in what counts and personal numbers are made of: numerals, prefixes, units, nouns, separators.
NUMBER_TEXT = st.lists(
    st.one_of(
        st.sampled_from(list("0123456789一二两三四五六七八九十百千万零〇几数上成")),
        st.sampled_from(list("近约大将超逾多余来名位户人个家号第.,+-() Xx")),
        st.sampled_from(["工人", "业主", "群众", "人民", "户口", "86", "0731", "138", "1003", "\u0663", "A", "口人"]),
        st.text(max_size=2),
    ),
    max_size=60,
).map("".join)


def _without_lookahead(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The pattern as written before its leading first-character lookahead was added."""
    assert pattern.pattern.startswith("(?=")
    return re.compile(pattern.pattern[pattern.pattern.index(")") + 1:], pattern.flags)


@given(NUMBER_TEXT)
def test_first_character_lookaheads_change_no_match(text: str) -> None:
    """The lookahead only skips positions where no match can start: it lists every possible first character."""
    for fast in (_COUNT, _ID_CARD, _LANDLINE, _PHONE):
        plain = _without_lookahead(fast)
        assert [(m.span(), m.groupdict()) for m in fast.finditer(text)] == \
            [(m.span(), m.groupdict()) for m in plain.finditer(text)]


# Text as it reaches the segmenter: words of the user dictionary and not, runs of CJK characters, letters,
# digits, the characters jieba keeps inside a block (``.-_%#``), phone numbers (masked, possibly cut), and
# the word boundaries.
SEGMENTED_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["燃气", "泄漏", "小区", "物业", "中国人民", "的", "了", "南京市", "长江大桥", "3号楼",
                         "58车贷", "110kV", "a.b", "1.5", "-", "_", "%", "#", "13812345678", "<电话>"]),
        st.sampled_from(["小", "燃", "长", "大", "电", "a", "1", "."]),  # halves of words, to end a part with
        st.sampled_from(sorted(WORD_BOUNDARIES)),
        st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80), max_size=4),
        st.text(max_size=3),
    ),
    max_size=40,
).map("".join)


@cache
def _segmenter(name: str) -> object:
    return tokenizer._build(name)


@pytest.mark.parametrize("name", tokenizer.NAMES)
@given(first=SEGMENTED_TEXT, boundary=st.sampled_from(sorted(WORD_BOUNDARIES)), rest=SEGMENTED_TEXT)
def test_no_segmenter_puts_a_word_across_a_word_boundary(name: str, first: str, boundary: str, rest: str) -> None:
    """What lets a long body be segmented in two (`features.prepared`): the words of a text are the words
    before a boundary character followed by the words from it on, for every segmenter a model may record."""
    segment = _segmenter(name)
    assert list(segment(first + boundary + rest)) == list(segment(first)) + list(segment(boundary + rest))


LONG_BODY = st.lists(SEGMENTED_TEXT, min_size=12, max_size=24).map("".join)


@given(LONG_BODY)
def test_a_body_segmented_in_two_has_the_words_of_one_reading(body: str) -> None:
    case = prepare("电梯故障", body)
    assert case.body_tokens == tuple(tokenise(case.body_masked))
    for chars in (BODY_HEAD_CHARS, 120):  # the detector's default head, and a shorter one (no reuse)
        head = case_text("", case.body[:chars])
        assert case.head_tokens(head) == tuple(tokenise(head))


# Text where numbers, dots, money units and sentence ends meet: the statistics' shortcuts are exact.
STAT_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["12", "3.5", "0.75", "7.", ".", "..", "元", "块钱", "块", "钱", "两万", "多", "余", " ",
                         "三十", "。", "!?", "；", "a", "٣", "１.２", "20块钱", "两万多块钱", "3.5万元"]),
        st.text(alphabet="0123456789.元块钱万一", max_size=4),
    ),
    max_size=12,
).map("".join)


@given(STAT_TEXT, STAT_TEXT)
def test_text_statistics_equal_one_regex_scan_each(title: str, body: str) -> None:
    from models.risk.features import _MONEY, _NUMBER_RUN, _SENTENCE_END, _text_stats

    case = prepare(title, body)
    text = case.text
    reference = [float(len(case.title)), float(len(case.body)), float(not case.body),
                 float(len(re.findall(r"\d", text))), float(len(_NUMBER_RUN.findall(text))),
                 float(len(_MONEY.findall(text))), float(len(_SENTENCE_END.findall(text)))]
    assert _text_stats(case) == reference
