"""Property tests for `training.loading.load_cases` on generated CSV / XLSX / Parquet files.

A loader either returns the cases (every row kept, rejected or merged, each text exactly as normalised from
its cell) or raises `DataError` naming the file; any other exception would reach `triage` as a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from features.text import normalise
from training.loading import DataError, load_cases

HOSTILE = st.sampled_from(
    ["\x00", "\x1b", "\x7f", "\u200b", "\u202e", "\ufeff", "e\u0301", "😀", "👨\u200d👩\u200d👧", "مرحبا", "燃气泄漏",
     '"', "'", ",", ";", "\t", "\n", "\r\n", "\r", "=1+1", "@SUM(A1)", "NaN", "null", "None", "", " "]
)
CELL = st.lists(st.one_of(st.text(max_size=15), HOSTILE), max_size=6).map("".join)
ROWS = st.lists(st.tuples(CELL, CELL, st.sampled_from(["", "red", "黄色", "green"])), min_size=1, max_size=8)


def _write(rows: list[tuple[str, str, str]], suffix: str, folder: Path) -> tuple[Path, pd.DataFrame]:
    frame = pd.DataFrame(
        {
            "case_id": [f"C{i}" for i in range(len(rows))],
            "title": [r[0] for r in rows],
            "body": [r[1] for r in rows],
            "risk_level": [r[2] for r in rows],
        },
        dtype=object,
    )
    path = folder / f"cases{suffix}"
    if suffix == ".csv":  # RFC 4180 line ends, so cells holding a bare CR are quoted (see features.csv_safety)
        frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\r\n")
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:  # spreadsheets cannot hold control characters at all: openpyxl refuses to write them
        frame = frame.map(lambda v: ILLEGAL_CHARACTERS_RE.sub("", v))
        book = Workbook()
        sheet = book.active
        for r, values in enumerate([list(frame.columns), *frame.to_numpy().tolist()], start=1):
            for c, value in enumerate(values, start=1):
                cell = sheet.cell(row=r, column=c, value=value)
                cell.data_type = "s"  # text as typed: "=0" is a string here, not a formula without a cached value
        book.save(path)
    return path, frame


@given(ROWS, st.sampled_from([".csv", ".xlsx", ".parquet"]))
@settings(max_examples=60)
def test_generated_tables_load_exactly_or_fail_with_a_data_error(rows: list[tuple[str, str, str]], suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path, written = _write(rows, suffix, Path(folder))
        try:
            loaded = load_cases([path])
        except DataError as exc:
            assert str(exc).startswith(str(path)), exc
            return
    report = loaded.report
    assert report.rows_read == report.rows_kept + len(report.rejected) + report.duplicates_merged
    by_id = written.set_index("case_id")
    for case in loaded.frame.itertuples():
        source = by_id.loc[case.case_id]
        assert case.title == normalise(source["title"])
        assert case.body == normalise(source["body"])
    kept_or_rejected = set(loaded.frame["source_row"]) | {r.row for r in report.rejected}
    assert kept_or_rejected <= set(range(2, len(written) + 2))


@given(st.binary(max_size=300), st.sampled_from([".csv", ".tsv", ".txt", ".xlsx", ".parquet"]))
@settings(max_examples=150)
def test_arbitrary_bytes_load_or_fail_with_a_data_error_naming_the_file(raw: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"junk{suffix}"
        path.write_bytes(raw)
        try:
            load_cases([path])
        except DataError as exc:
            assert str(exc).startswith(str(path)), exc


@given(st.lists(CELL, min_size=1, max_size=5), st.lists(st.lists(CELL, max_size=6), max_size=5))
@settings(max_examples=150)
def test_arbitrary_csv_text_loads_or_fails_with_a_data_error(header: list[str], rows: list[list[str]]) -> None:
    """Ragged rows, duplicate or odd headers, stray quotes: the error names the file, and the row if any."""
    text = "\n".join(",".join(r) for r in [header, *rows])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ragged.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_cases([path])
        except DataError as exc:
            assert str(exc).startswith(str(path)), exc
