"""What a reviewer's decision may be: one set of rules for the review API and the reviewer page.

Both ask `decide` and only word its problems differently (the API in English with field locations, the
page in Chinese), so a decision the page accepts is exactly one the API accepts.

* confirm: the model's department and level are stored as the decision (a note is optional); giving a
  department or level that differs from the model's is a problem, not a silent change;
* change: at least one of department and level must differ from the model's, a field left out keeps
  the model's value, the department must be one the model knows, and a note must say why.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the rules stay importable without the model and store packages' dependencies
    from models.mlflow_model import LoadedModel
    from store import Store

LEVELS = ("red", "yellow", "green")
MAX_NOTE_CHARS = 2000

Field = Literal["action", "department", "level", "note"]


@dataclass(frozen=True)
class Decision:
    department: str
    level: str | None
    note: str | None


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field: `code` is stable (the API's error type), the wording is the caller's."""

    field: Field
    code: Literal[
        "unknown_action",
        "confirm_changes_department",
        "confirm_changes_level",
        "nothing_changed",
        "missing_note",
        "note_too_long",
        "unknown_department",
        "unknown_level",
    ]
    given: str | None = None


def decide(
    action: str,
    department: str | None,
    level: str | None,
    note: str | None,
    *,
    model_department: str,
    model_level: str | None,
    known_departments: Collection[str],
) -> Decision | list[Problem]:
    """The decision to store, or every problem found (empty strings count as not given)."""
    department, level = department or None, level or None
    note = (note or "").strip() or None
    problems: list[Problem] = []
    if action == "confirm":
        if department is not None and department != model_department:
            problems.append(Problem("department", "confirm_changes_department", department))
        if level is not None and level != model_level:
            problems.append(Problem("level", "confirm_changes_level", level))
    elif action == "change":
        if (department or model_department) == model_department and (level or model_level) == model_level:
            problems.append(Problem("department", "nothing_changed", department))
            problems.append(Problem("level", "nothing_changed", level))
        if note is None:
            problems.append(Problem("note", "missing_note"))
    else:
        problems.append(Problem("action", "unknown_action", action))
    if note is not None and len(note) > MAX_NOTE_CHARS:
        problems.append(Problem("note", "note_too_long"))
    if level is not None and level not in LEVELS:
        problems.append(Problem("level", "unknown_level", level))
    if department is not None and department not in known_departments:
        problems.append(Problem("department", "unknown_department", department))
    if problems:
        return problems
    if action == "confirm":
        return Decision(model_department, model_level, note)
    return Decision(department or model_department, level or model_level, note)


def known_departments(model: LoadedModel | None, store: Store) -> list[str]:
    """Departments a review may decide: the serving model's; without a model, every one a prediction named.

    The reviewer page offers and checks the same list, so the page and the API accept the same decisions.
    """
    if model is not None:
        return [str(label) for label in model.bundle.classes]
    return store.known_departments()
