"""Tests for features.places: place names by pattern, most specific first, on made-up texts."""

from __future__ import annotations

import pytest

from features.places import (
    Place,
    extract_places,
    is_specific,
    place_key,
    primary_place,
    same_place,
)
from features.text import normalise


def names(text: str) -> list[tuple[str, str]]:
    return [(p.name, p.kind) for p in extract_places(text)]


# -- kinds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("兰亭苑小区3栋地下室燃气味很重", ("兰亭苑小区", "community")),
        ("锦绣华庭的业主反映", ("锦绣华庭", "community")),
        ("金桂园停水三天", ("金桂园", "community")),
        ("翠湖湾夜间施工", ("翠湖湾", "community")),
        ("幸福里社区停水三天", ("幸福里社区", "community")),
        ("枫林村的养猪场臭气熏天", ("枫林村", "community")),
        ("云玺府项目停工", ("云玺府", "community")),
        ("阳光公寓电梯坏了", ("阳光公寓", "community")),
        ("丽景家园地下车库积水", ("丽景家园", "community")),
        ("锦江花园门口占道", ("锦江花园", "community")),
        ("宏达建筑有限公司拖欠工资", ("宏达建筑有限公司", "company")),
        ("恒通客运集团停发班车", ("恒通客运集团", "company")),
        ("金汇服装厂欠薪", ("金汇服装厂", "company")),
        ("青林区实验小学食堂", ("实验小学", "school")),
        ("金穗幼儿园涨价", ("金穗幼儿园", "school")),
        ("云川市第三中学补课", ("第三中学", "school")),
        ("南湖区人民医院挂号难", ("人民医院", "hospital")),
        ("北山县柳镇卫生院没有医生", ("柳镇卫生院", "hospital")),
        ("东门农贸市场占道经营", ("东门农贸市场", "market")),
        ("鑫盛财富平台无法提现", ("鑫盛财富平台", "market")),
        ("时代广场噪音扰民", ("时代广场", "market")),
        ("翠屏山景区乱收费", ("翠屏山景区", "venue")),
        ("长宁路28号门口积水", ("长宁路28号", "road")),
        ("建设北路路灯不亮", ("建设北路", "road")),
        ("滨江大道大货车超速", ("滨江大道", "road")),
        ("芙蓉中路二段施工", ("芙蓉中路二段", "road")),
        ("312路公交突然停运", ("312路", "line")),
        ("地铁2号线延长到高新区", ("地铁2号线", "line")),
    ],
)
def test_extract_places_finds_the_name_and_its_kind_first(text: str, expected: tuple[str, str]) -> None:
    assert names(text)[0] == expected


def test_anonymised_names_of_the_exports_are_districts_and_bound_the_next_name() -> None:
    assert names("A市A3区郝家坪小学什么时候能改扩建") == [
        ("郝家坪小学", "school"),
        ("A3区", "district"),
        ("A市", "district"),
    ]
    assert names("K9县黄花镇柳湾村村民反映") == [
        ("柳湾村", "community"),
        ("黄花镇", "district"),
        ("K9县", "district"),
    ]


def test_districts_come_last_from_the_smallest_to_the_largest() -> None:
    kinds = names("西地省云川市青林区长宁街道兰亭苑小区")
    assert kinds == [
        ("兰亭苑小区", "community"),
        ("长宁街道", "district"),
        ("青林区", "district"),
        ("云川市", "district"),
        ("西地省", "district"),
    ]


def test_a_named_place_is_more_specific_than_the_road_it_is_on() -> None:
    place = primary_place("青林区学府路的兰馨美容院上周突然关门了")
    assert place == Place("兰馨美容院", "company", 7, 12)


def test_a_place_inside_a_longer_one_is_dropped() -> None:
    # 学府路 is part of the school's name, not a second place
    assert names("学府路小学新塑胶跑道气味刺鼻") == [("学府路小学", "school")]


def test_offsets_point_at_the_name_in_the_text() -> None:
    text = "关于东港区海棠湾小区夜里化工异味的投诉"
    for place in extract_places(text):
        assert text[place.start : place.end] == place.name


@pytest.mark.parametrize(
    "text",
    [
        "我们小区的路灯坏了",
        "附近的小区都停水了",
        "老旧小区改造什么时候开始",
        "请问市政府在哪里办公",
        "孩子明年上大学",
        "物业公司不作为",
        "马路上的道路标线",
        "县城到乡村的公路",
        "去网站上查询",
        "他站不住了",
        "",
    ],
)
def test_common_words_are_not_places(text: str) -> None:
    assert [p for p in extract_places(text) if is_specific(p)] == []


def test_boundary_words_cut_the_name_on_the_left() -> None:
    assert primary_place("投诉金汇服装厂拖欠工资").name == "金汇服装厂"
    assert primary_place("我住在御景湾小区5栋").name == "御景湾小区"
    assert primary_place("参加福满楼酒家婚宴后腹泻").name == "福满楼酒家"


# -- power lines --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["架设110kv高压线杆", "架设110KV高压电线", "11万伏高压线没有埋地", "110千伏线路"])
def test_power_line_voltages_are_normalised(text: str) -> None:
    lines = [p for p in extract_places(text) if p.kind == "line"]
    assert lines and lines[0].name.startswith("110kV")


def test_generic_power_lines_and_districts_are_not_specific_but_named_lines_are() -> None:
    line = next(p for p in extract_places("门前架设110kv高压线") if p.kind == "line")
    assert not is_specific(line)
    assert not is_specific(Place("A3区", "district", 0, 3))
    assert is_specific(primary_place("312路公交停运"))
    assert primary_place("A6区架设高压线", specific_only=True) is None
    assert primary_place("A6区架设高压线").kind == "line"


def test_road_before_generic_line_before_district() -> None:
    assert [k for _, k in names("关于A6区月亮岛路沿线架设110kv高压线杆的投诉")] == ["road", "line", "district"]


# -- comparing names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (Place("御景湾小区", "community", 0, 5), Place("御景湾", "community", 0, 3), True),
        (Place("金汇服装有限公司", "company", 0, 8), Place("金汇服装厂", "company", 0, 5), True),
        (Place("长宁路28号", "road", 0, 6), Place("长宁路", "road", 0, 3), True),
        (Place("兰亭苑小区", "community", 0, 5), Place("金桂园小区", "community", 0, 5), False),
        (Place("长宁路", "road", 0, 3), Place("建设北路", "road", 0, 4), False),
    ],
)
def test_place_keys_match_spellings_of_one_place_only(a: Place, b: Place, same: bool) -> None:
    assert same_place(place_key(a), place_key(b)) is same


def test_extraction_is_pure_and_repeatable_on_normalised_text() -> None:
    text = normalise("　关于云川市南湖区金穗幼儿园乱收费（第２次）")
    assert extract_places(text) == extract_places(text)
    assert primary_place(text).name == "金穗幼儿园"
