"""The district (属地) of a case text against the gazetteer; and the warning policy file's checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from features.districts import UNKNOWN, Gazetteer, GazetteerError, district_of, load_gazetteer
from models.config_file import ConfigError
from models.warning_policy import load_warning_policy


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return load_gazetteer()


@pytest.mark.parametrize(
    ("title", "body", "district"),
    [
        ("南湖区翠湖湾小区垃圾站臭气熏天", "", "南湖区"),
        ("小区燃气味很重", "我住在北山县城关镇幸福小区，地下室燃气味很重", "北山县"),
        ("感谢临江县交警", "", "临江县"),  # the pattern's left edge takes 感谢; the gazetteer's suffix match does not
        ("经开区工地拖欠工资", "", "云川经开区"),  # an alias
        ("云川市东港区渔港路", "", "东港区"),  # the city is no 区/县 of the gazetteer
        ("标题没有地方", "正文提到西岭区学府路", "西岭区"),  # the title first, then the body
        ("请问新生儿落户需要准备哪些材料？", "", UNKNOWN),
        ("K9县某村道路塌陷", "", UNKNOWN),  # a district the gazetteer does not list
    ],
)
def test_district_of(gazetteer: Gazetteer, title: str, body: str, district: str) -> None:
    assert district_of(title, body, gazetteer) == district


def test_a_configured_gazetteer_replaces_the_demo_city(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("districts:\n  K9县: [K9]\n", encoding="utf-8")
    own = load_gazetteer(path)
    assert district_of("K9县某村道路塌陷", "", own) == "K9县"
    assert district_of("南湖区翠湖湾小区", "", own) == UNKNOWN
    path.write_text("districts: [南湖区]\n", encoding="utf-8")
    with pytest.raises(GazetteerError, match="expected a non-empty mapping"):
        load_gazetteer(path)
    with pytest.raises(GazetteerError, match="not found"):
        load_gazetteer(tmp_path / "missing.yaml")


def test_the_policy_file_reads_durations_and_names_its_errors(tmp_path: Path) -> None:
    policy = load_warning_policy()
    assert policy.deadlines["red"].acknowledge == timedelta(hours=2)
    assert policy.deadlines["yellow"].resolve == timedelta(days=3)
    path = tmp_path / "w.yaml"
    path.write_text("issue_yellow: false\ndeadlines:\n  red: {acknowledge: 30m, resolve: 12h}\n"
                    "  yellow: {acknowledge: 1d, resolve: 2d}\n", encoding="utf-8")
    own = load_warning_policy(path)
    assert not own.issues("yellow") and own.deadlines["red"].acknowledge == timedelta(minutes=30)
    path.write_text("deadlines:\n  red: {acknowledge: soon, resolve: 12h}\n  yellow: {acknowledge: 1d, resolve: 2d}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deadlines\.red\.acknowledge.*not a duration"):
        load_warning_policy(path)
    path.write_text("deadlines:\n  red: {acknowledge: 2h, resolve: 1h}\n  yellow: {acknowledge: 1d, resolve: 2d}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="resolve must not come before acknowledge"):
        load_warning_policy(path)
