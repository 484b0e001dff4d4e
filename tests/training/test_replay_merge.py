"""The Dask replay's merge, fed partition by partition, yields the one global replay order.

The replay runs while partitions are still being prepared: what it yields before the last partition
arrives must never be preceded by a case of a partition added later. Checked against a plain sort of all
cases (time, then file, then row; leading undated rows take the time of the files before), for any
arrival order and any interleaving of `ready` calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from training.dask_predict import _NAT, ReplayMerge, _time_keys, partition_times

# a partition: each row's time in hours, or None (undated)
_rows = st.lists(st.one_of(st.none(), st.integers(0, 40)), max_size=12)


def _frame(hours: list[int | None]) -> pd.DataFrame:
    times = [None if h is None else pd.Timestamp("2024-01-01") + pd.Timedelta(hours=h) for h in hours]
    return pd.DataFrame({"created_at": pd.Series(times, dtype="datetime64[us]")})


def _runs(index: int, frame: pd.DataFrame) -> tuple[list, list]:
    """The head and body spill runs `prepare_partition` writes, with (partition, row) as the event."""
    keys, lead, _ = _time_keys(frame)
    head = [(None, row, (index, row), None) for row in range(lead)]
    body_rows = lead + np.lexsort((np.arange(lead, len(frame)), keys[lead:]))
    body = [(int(keys[row]), int(row), (index, int(row)), None) for row in body_rows]
    return head, body


def _expected(frames: list[pd.DataFrame]) -> list[tuple[int, int]]:
    order, carry = [], _NAT
    for index, frame in enumerate(frames):
        keys, lead, last = _time_keys(frame)
        order += [((carry if row < lead else int(keys[row])), index, row) for row in range(len(frame))]
        carry = last if last != _NAT else carry
    return [(p, row) for _, p, row in sorted(order)]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_rows, min_size=1, max_size=6), data=st.data())
def test_merge_fed_in_any_order_yields_the_global_replay_order(
    parts: list[list[int | None]], data: st.DataObject
) -> None:
    frames = [_frame(hours) for hours in parts]
    merge = ReplayMerge([partition_times(i, f) for i, f in enumerate(frames)])
    arrival = data.draw(st.permutations(range(len(frames))))
    got: list[tuple[int, int]] = []
    for index in arrival:
        merge.add(index, *(iter(run) for run in _runs(index, frames[index])))
        if data.draw(st.booleans()):
            got += [(p, row) for p, row, _, _ in merge.ready()]
    got += [(p, row) for p, row, _, _ in merge.ready()]
    assert got == _expected(frames)


def test_files_in_time_order_replay_as_each_arrives() -> None:
    """The case the overlap exists for: files in time order, prepared in order, are replayed one by one."""
    frames = [_frame([0, 1, 2]), _frame([None, 3, 4]), _frame([5, 6])]
    merge = ReplayMerge([partition_times(i, f) for i, f in enumerate(frames)])
    merge.add(0, *(iter(run) for run in _runs(0, frames[0])))
    assert [(p, row) for p, row, _, _ in merge.ready()] == [(0, 0), (0, 1), (0, 2)]
    merge.add(2, *(iter(run) for run in _runs(2, frames[2])))
    assert list(merge.ready()) == []  # partition 1 (its undated row takes hour 2) comes first
    merge.add(1, *(iter(run) for run in _runs(1, frames[1])))
    assert [(p, row) for p, row, _, _ in merge.ready()] == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
