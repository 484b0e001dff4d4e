"""`triage predict` reads its input in a forked process (`command.input_reader`): the same cases as a read
here, the same errors, and a reader that dies costs time, not the run."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import command.input_reader as input_reader
from command.input_reader import InputReader
from training.loading import DataError, load_cases


@pytest.fixture
def cases_csv(tmp_path: Path) -> Path:
    path = tmp_path / "cases.csv"
    pd.DataFrame({
        "case_id": ["A-1", "A-2", "A-3"],
        "title": ["小区噪音扰民", "１２３路公交车太少", "   "],
        "body": ["晚上施工\n\t\t到凌晨", "", ""],
        "created_at": ["2019-01-02 08:00:00", "2019-01-03", "2019-01-04"],
    }).to_csv(path, index=False)
    return path


def test_the_forked_reader_gives_the_cases_and_report_of_a_read_here(cases_csv: Path) -> None:
    reader = InputReader(cases_csv, "utf-8")
    assert reader._future is not None, "fork is available on Linux: the file is read in another process"
    loaded = reader.result()
    here = load_cases([cases_csv], training=False, with_keys=False)
    pd.testing.assert_frame_equal(loaded.frame, here.frame)
    assert loaded.report == here.report
    assert loaded.frame["title"].tolist() == ["小区噪音扰民", "123路公交车太少"]  # normalised; the empty row rejected
    assert [r.row for r in loaded.report.rejected] == [4]


def test_a_data_error_in_the_reader_is_raised_here_with_its_file_and_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,when\nX-1,2019-01-02\n", encoding="utf-8")  # no text column
    with pytest.raises(DataError) as caught:
        InputReader(bad, "utf-8").result()
    assert caught.value.file == str(bad)
    with pytest.raises(DataError) as here:
        load_cases([bad], training=False, with_keys=False)
    assert str(caught.value) == str(here.value)


_PARENT = os.getpid()
_READ = input_reader._read


def _dies_in_the_child(path: Path, encoding: str):  # module level: the pool sends it by name
    if os.getpid() != _PARENT:
        os._exit(9)  # as if killed (out of memory)
    return _READ(path, encoding)


def test_a_reader_that_dies_is_replaced_by_a_read_here(
    cases_csv: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(input_reader, "_read", _dies_in_the_child)
    reader = InputReader(cases_csv, "utf-8")
    loaded = reader.result()
    assert loaded.frame["case_id"].tolist() == ["A-1", "A-2"]
    assert "ended early" in caplog.text
    assert reader._pool is None  # shut down: no process left behind


def test_without_fork_the_file_is_read_here(cases_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_reader.mp, "get_all_start_methods", lambda: ["spawn"])
    reader = InputReader(cases_csv, "utf-8")
    assert reader._future is None
    assert reader.result().frame["case_id"].tolist() == ["A-1", "A-2"]


def test_a_large_file_or_a_missing_one_is_read_here(
    cases_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(input_reader, "MAX_FORKED_BYTES", cases_csv.stat().st_size - 1)
    reader = InputReader(cases_csv, "utf-8")
    assert reader._future is None  # its cases would be held twice on the way back
    assert reader.result().frame["case_id"].tolist() == ["A-1", "A-2"]
    monkeypatch.undo()
    missing = InputReader(tmp_path / "absent.csv", "utf-8")
    assert missing._future is None
    with pytest.raises(DataError, match=r"absent\.csv"):
        missing.result()
