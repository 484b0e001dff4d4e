"""training.splitting: held-out splits keep duplicate groups together, are stratified and reproducible."""

from __future__ import annotations

import pandas as pd
import pytest

from training.splitting import group_folds, train_test_split_grouped


def test_demo_split_keeps_groups_apart_and_loses_no_case(demo_cases: pd.DataFrame) -> None:
    train, test = train_test_split_grouped(demo_cases, 0.2, 42)
    assert len(train) + len(test) == len(demo_cases)
    assert set(train["case_id"]) | set(test["case_id"]) == set(demo_cases["case_id"])
    assert not set(train["group_key"]) & set(test["group_key"])
    assert 0.15 <= len(test) / len(demo_cases) <= 0.25
    # Stratified: every department is held out in about the same share.
    share = test["department"].value_counts() / demo_cases["department"].value_counts()
    assert share.between(0.1, 0.3).all(), share.to_dict()


def test_split_is_reproducible_for_a_seed_and_changes_with_it(demo_cases: pd.DataFrame) -> None:
    _, a = train_test_split_grouped(demo_cases, 0.2, 42)
    _, b = train_test_split_grouped(demo_cases, 0.2, 42)
    _, c = train_test_split_grouped(demo_cases, 0.2, 7)
    assert a["case_id"].tolist() == b["case_id"].tolist()
    assert set(a["case_id"]) != set(c["case_id"])


def test_copies_of_one_message_always_land_on_the_same_side() -> None:
    rows = []
    for g in range(30):
        label = "A" if g % 2 else "B"
        for copy in range(3 if g % 5 == 0 else 1):
            rows.append({"case_id": f"{g}-{copy}", "group_key": f"g{g}", "department": label})
    frame = pd.DataFrame(rows)
    for seed in range(5):
        train, test = train_test_split_grouped(frame, 0.25, seed)
        assert not set(train["group_key"]) & set(test["group_key"])
        assert set(test["department"]) == {"A", "B"}


@pytest.mark.parametrize(("smallest", "asked", "expected"), [(3, 5, 3), (10, 5, 5), (1, 5, 2)])
def test_group_folds_shrink_to_the_smallest_class(smallest: int, asked: int, expected: int) -> None:
    frame = pd.DataFrame({"department": ["A"] * 20 + ["B"] * smallest})
    assert group_folds(frame, asked, 0).get_n_splits() == expected
