"""`settle_long_lived`: what exists at start-up leaves the collector's passes; later garbage is still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from models.long_lived import settle_long_lived


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> tuple[_Node, weakref.ref[_Node]]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture(autouse=True)
def _thaw() -> object:
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


def test_objects_alive_at_settle_are_frozen_and_later_ones_are_not() -> None:
    before = _Node()
    frozen = settle_long_lived()
    after = _Node()
    assert frozen == gc.get_freeze_count() > 0
    tracked = {id(o) for o in gc.get_objects()}
    assert id(before) not in tracked
    assert id(after) in tracked


def test_a_cycle_dropped_after_settle_is_collected_by_the_next_one() -> None:
    """A swapped-out model's reference cycles: kept while frozen, freed by the next settle (a reload)."""
    node, ref = _cycle()
    settle_long_lived()
    del node
    gc.collect()
    assert ref() is not None  # frozen: the ordinary collection does not reach it
    settle_long_lived()
    assert ref() is None


def test_garbage_made_after_settle_is_still_collected() -> None:
    settle_long_lived()
    node, ref = _cycle()
    del node
    gc.collect()
    assert ref() is None
