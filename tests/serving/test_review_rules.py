"""One set of rules for a reviewer's decision, shared by the review API and the reviewer page."""

from __future__ import annotations

from serving.review_rules import MAX_NOTE_CHARS, Decision, decide

KNOWN = ["城乡建设", "环境保护", "交通运输"]


def run(action: str, department: str | None = None, level: str | None = None, note: str | None = None):
    return decide(action, department, level, note, model_department="城乡建设", model_level="red",
                  known_departments=KNOWN)


def codes(result: object) -> list[tuple[str, str]]:
    assert isinstance(result, list)
    return [(p.field, p.code) for p in result]


def test_confirm_stores_the_models_outputs_with_an_optional_note() -> None:
    assert run("confirm") == Decision("城乡建设", "red", None)
    assert run("confirm", "城乡建设", "red", "  现场核实  ") == Decision("城乡建设", "red", "现场核实")


def test_confirm_that_changes_something_is_refused_not_silently_applied() -> None:
    assert codes(run("confirm", "环境保护", "yellow")) == [
        ("department", "confirm_changes_department"), ("level", "confirm_changes_level"),
    ]


def test_change_keeps_what_it_leaves_out_and_needs_a_difference_and_a_note() -> None:
    assert run("change", level="yellow", note="无人员伤亡风险") == Decision("城乡建设", "yellow", "无人员伤亡风险")
    assert run("change", department="环境保护", note="排污问题") == Decision("环境保护", "red", "排污问题")
    assert codes(run("change", "城乡建设", "red", "x")) == [
        ("department", "nothing_changed"), ("level", "nothing_changed"),
    ]
    assert codes(run("change", level="green", note="   ")) == [("note", "missing_note")]


def test_unknown_values_and_long_notes_name_their_field() -> None:
    assert codes(run("change", "规划局", "purple", "x" * (MAX_NOTE_CHARS + 1))) == [
        ("note", "note_too_long"), ("level", "unknown_level"), ("department", "unknown_department"),
    ]
    assert codes(run("delete")) == [("action", "unknown_action")]
    assert run("change", "", "", "改为黄色") != Decision("城乡建设", "red", "改为黄色")  # empty fields are not changes
