"""Tests for features.text: normalisation, masking of personal numbers, case text and tokenisation."""

from __future__ import annotations

import threading
import time

import pytest

from features import tokenizer
from features.text import case_text, case_tokens, init_tokenizer, mask_personal_data, normalise, stop_words, tokenise

# -- normalise -------------------------------------------------------------------------------------


def test_normalise_folds_full_width_digits_letters_and_punctuation_to_ascii() -> None:
    assert normalise("１２３４５热线ＡＢＣｘｙｚ！（）") == "12345热线ABCxyz!()"


def test_full_width_and_ascii_spellings_normalise_to_the_same_text() -> None:
    assert normalise("拨打１２３４５投诉") == normalise("拨打12345投诉")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\n\t\t小区路灯坏了\n\t\t", "小区路灯坏了"),
        ("路灯\n\t\t坏了", "路灯 坏了"),
        ("路灯 \r\n\r\n  坏了", "路灯 坏了"),
        ("路灯\u3000\u3000坏了", "路灯 坏了"),  # ideographic spaces fold to one ASCII space
    ],
)
def test_normalise_collapses_whitespace_runs_and_strips_ends(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e"])
def test_normalise_removes_zero_width_characters_without_splitting_words(invisible: str) -> None:
    assert normalise(f"燃气{invisible}泄漏") == "燃气泄漏"


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f"])
def test_normalise_removes_control_characters(control: str) -> None:
    out = normalise(f"燃气{control}泄漏{control}")
    assert control not in out
    assert out.replace(" ", "") == "燃气泄漏"
    assert all(ch.isprintable() for ch in out)


@pytest.mark.parametrize("empty", [None, "", "   ", "\n\t\t", "\u200b\ufeff"])
def test_normalise_of_empty_or_blank_input_is_the_empty_string(empty: str | None) -> None:
    assert normalise(empty) == ""


def test_normalise_is_idempotent() -> None:
    raw = "　关于＂兰亭苑＂小区\n\t\t路灯\u200b问题（第２次）\x07 "
    once = normalise(raw)
    assert normalise(once) == once


# -- mask_personal_data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "13912345678",
        "+8613912345678",
        "+86 13912345678",
        "+86-139-1234-5678",
        "139-1234-5678",
        "139 1234 5678",
        "8618923307615",
    ],
)
def test_mobile_numbers_are_masked(phone: str) -> None:
    assert mask_personal_data(f"请联系我{phone}，谢谢") == "请联系我<电话>，谢谢"


@pytest.mark.parametrize("landline", ["0731-84567890", "010-12345678", "073184567890", "0871-6543210"])
def test_landline_numbers_are_masked(landline: str) -> None:
    assert mask_personal_data(f"座机{landline}无人接听") == "座机<电话>无人接听"


@pytest.mark.parametrize("landline", ["(0731)84567890", "0731 84567890"])
def test_landline_numbers_with_bracketed_or_spaced_area_code_are_masked(landline: str) -> None:
    assert "84567890" not in mask_personal_data(f"座机{landline}无人接听")


@pytest.mark.parametrize("id_number", ["430102199001011234", "43010219900101123X", "43010219900101123x"])
def test_18_character_id_card_numbers_are_masked(id_number: str) -> None:
    assert mask_personal_data(f"身份证号{id_number}。") == "身份证号<身份证号>。"


def test_id_card_number_is_not_mistaken_for_a_phone_number() -> None:
    # 18 digits that contain a mobile-like run must become one ID placeholder, not a phone placeholder.
    assert mask_personal_data("证件号513912345678901234") == "证件号<身份证号>"


def test_several_personal_numbers_in_one_text_are_all_masked() -> None:
    masked = mask_personal_data("我姓吴，电话18923307615，座机0731-84567890，身份证43010219900101123X。")
    assert masked == "我姓吴，电话<电话>，座机<电话>，身份证<身份证号>。"


@pytest.mark.parametrize(
    "ordinary",
    [
        "公司拖欠我们60多名工人半年工资",
        "2025年7月11日反映过一次",
        "补偿款100000元至今未到账",
        "18路公交车班次太少，205路也一样",
        "房屋面积89.5平米，单价12000元",
        "工单号20250711",
    ],
)
def test_ordinary_numbers_are_kept(ordinary: str) -> None:
    assert mask_personal_data(ordinary) == ordinary


# -- case_text -------------------------------------------------------------------------------------


def test_case_text_joins_title_and_body_with_a_full_stop() -> None:
    assert case_text("路灯坏了", "兰亭苑小区东门外的路灯坏了三周") == "路灯坏了。兰亭苑小区东门外的路灯坏了三周"


@pytest.mark.parametrize("empty_body", [None, "", "\n\t\t"])
def test_case_text_of_a_title_only_case_is_the_title(empty_body: str | None) -> None:
    assert case_text("１８路公交车班次太少", empty_body) == "18路公交车班次太少"


@pytest.mark.parametrize("empty_title", [None, "", "  "])
def test_case_text_of_a_body_only_case_is_the_body(empty_title: str | None) -> None:
    assert case_text(empty_title, "\n\t\t每晚十一点后还在打桩。\n\t\t") == "每晚十一点后还在打桩。"


def test_case_text_of_an_empty_case_is_empty() -> None:
    assert case_text(None, None) == ""


def test_case_text_normalises_and_masks_both_parts() -> None:
    out = case_text("噪音扰民　请回电１３９１２３４５６７８", "联系电话：139-1234-5678\n\t\t谢谢")
    assert out == "噪音扰民 请回电<电话>。联系电话:<电话> 谢谢"
    assert "139" not in out


# -- tokenise --------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["燃气泄漏", "拖欠工资", "物业费", "小区"])
def test_domain_words_from_the_user_dictionary_stay_whole(word: str) -> None:
    sentence = {
        "燃气泄漏": "三栋地下室燃气泄漏很严重",
        "拖欠工资": "老板拖欠工资半年了",
        "物业费": "物业公司又涨物业费",
        "小区": "我们小区路灯坏了",
    }[word]
    assert word in tokenise(normalise(sentence))


def test_tokenise_keeps_content_words_and_drops_stop_words_and_punctuation() -> None:
    tokens = tokenise(normalise("您好！我们的小区燃气泄漏了，请问怎么办？谢谢。"))
    assert "小区" in tokens and "燃气泄漏" in tokens
    for dropped in ("您好", "我们", "的", "了", "怎么", "谢谢", "！", "，", "？", "。", "!", ",", "?"):
        assert dropped not in tokens
    assert all(t.strip() for t in tokens)
    assert not set(tokens) & stop_words()


def test_tokenise_of_empty_text_is_empty() -> None:
    assert tokenise("") == []


def test_tokenise_is_deterministic() -> None:
    sentence = normalise("公司拖欠工资，工人们准备明天去市政府讨说法，小区物业费也涨了")
    assert tokenise(sentence) == tokenise(sentence)


def test_tokeniser_is_initialised_once_and_reused() -> None:
    init_tokenizer()
    first = tokenizer.segmenter()
    tokenise("物业费")
    init_tokenizer()
    assert tokenizer.segmenter() is first


def test_tokeniser_is_built_once_even_when_first_used_by_several_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An empty slot for the process-wide segmenter (monkeypatch puts the real one back afterwards).
    monkeypatch.setitem(tokenizer._state, "segment", None)
    built: list[str] = []

    def slow_build(name: str):
        built.append(name)
        time.sleep(0.2)  # loading jieba's dictionary takes a while; other threads arrive meanwhile
        return lambda text: [text]

    monkeypatch.setattr(tokenizer, "_build", slow_build)
    barrier = threading.Barrier(4)
    got: list[object] = []

    def first_use() -> None:
        barrier.wait()
        got.append(tokenizer.segmenter())

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert all(g is got[0] for g in got)


def test_case_tokens_equal_the_tokens_of_the_joined_text(demo_cases) -> None:
    """Tokenising title and body apart (to share the cache) must not change a single token."""
    pairs = list(zip(demo_cases["title"], demo_cases["body"], strict=True))
    pairs += [("", "只有正文"), ("只有标题", ""), ("电话13812345678", "身份证430102199001011234，请回电13812345678")]
    for title, body in pairs:
        assert case_tokens(title, body) == tokenise(case_text(title, body)), (title[:20], body[:20])
