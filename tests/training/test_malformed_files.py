"""Malformed and hostile input files through `triage predict`: one clear error line, or safe output.

A file from outside (a ticket-system export, a spreadsheet someone edited) can be cut off, mis-encoded or
carry formulas; predictions are opened in spreadsheets, so a formula must never come back out unescaped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from command.cli import app
from features.csv_safety import FORMULA_PREFIXES
from tests.mlflow_env import point_mlflow_at, reset_mlflow_uris
from training.loading import DataError, load_cases

WIDE = {"COLUMNS": "250", "NO_COLOR": "1"}
FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://x\",\"点我\")", "\t=1+1"]


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private MLflow store and working directory, as `triage predict` would have in a fresh checkout."""
    point_mlflow_at(monkeypatch, tmp_path)
    yield tmp_path
    reset_mlflow_uris()


def predict(model: Path, source: Path, out: Path, *extra: str):
    args = ["predict", "--model", str(model), "--input", str(source), "--output", str(out), *extra]
    return CliRunner().invoke(app, args, env=WIDE)


def assert_one_error_line(result, *parts: str) -> str:
    """Exit 2, no traceback, and exactly one `error:` line that names every part."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    message = flat(result.output[result.output.index("error:"):])
    for part in parts:
        assert flat(part) in message, (part, result.output)
    return message


def _valid_xlsx(path: Path) -> Path:
    pd.DataFrame({"case_id": [f"X{i}" for i in range(200)], "title": ["路灯坏了很久没人修"] * 200,
                  "body": ["青林区兰亭苑小区门口的路灯坏了两个月。" * 5] * 200}).to_excel(path, index=False)
    return path


# -- unreadable files: one line naming the file (and where it applies the row) ----------------------


def test_invalid_utf8_names_the_file_the_byte_and_the_line(workdir: Path, demo_bundle_dir: Path) -> None:
    source = workdir / "latin.csv"
    source.write_bytes("case_id,title\nA1,路灯坏了\n".encode() + b"A2,caf\xff\n")
    out = workdir / "out.csv"
    message = assert_one_error_line(predict(demo_bundle_dir, source, out), str(source), "0xff", "line 3")
    assert "gb18030" in message  # says what to try
    assert not out.exists()


def test_a_truncated_xlsx_names_the_file(workdir: Path, demo_bundle_dir: Path) -> None:
    whole = _valid_xlsx(workdir / "whole.xlsx").read_bytes()
    cut = workdir / "cut.xlsx"
    cut.write_bytes(whole[: len(whole) // 2])
    assert_one_error_line(predict(demo_bundle_dir, cut, workdir / "out.csv"), str(cut), "Excel workbook")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", b"", "empty, 0 bytes"),
        ("blank.csv", b"\n\n  \n", "no rows"),
        ("header_only.csv", b"case_id,title,body\n", "only a header"),
        ("header_only.xlsx", None, "only a header"),
        ("not_a_table.parquet", b"PAR1 this is not parquet", "Parquet"),
        ("no_text.csv", "编号,日期\n1,2026-01-01\n".encode(), "no text column"),
    ],
)
def test_unusable_files_fail_with_one_line(
    workdir: Path, demo_bundle_dir: Path, name: str, content: bytes | None, reason: str
) -> None:
    source = workdir / name
    if content is None:
        pd.DataFrame(columns=["case_id", "title"]).to_excel(source, index=False)
    else:
        source.write_bytes(content)
    assert_one_error_line(predict(demo_bundle_dir, source, workdir / "out.csv"), str(source), reason)


def test_the_columns_found_are_listed_as_they_are(workdir: Path, demo_bundle_dir: Path) -> None:
    """English headers in brackets were taken for markup by the console: "found columns ;"."""
    source = workdir / "english.csv"
    source.write_text("case_id,department,created_at\nA1,城乡建设,2026-01-01\n", encoding="utf-8")
    assert_one_error_line(predict(demo_bundle_dir, source, workdir / "out.csv"), str(source),
                          "no text column: found columns [case_id, department, created_at]")


def test_a_bad_cell_is_named_by_file_row_and_column(workdir: Path, demo_bundle_dir: Path) -> None:
    source = workdir / "levels.csv"
    source.write_text("case_id,title,risk_level\nA1,路灯坏了,red\nA2,燃气泄漏,purple\n", encoding="utf-8")
    assert_one_error_line(predict(demo_bundle_dir, source, workdir / "out.csv"),
                          str(source), "row 3", "column 'risk_level'", "purple")
    with pytest.raises(DataError) as caught:
        load_cases([source])
    assert (caught.value.file, caught.value.row, caught.value.column) == (str(source), 3, "risk_level")


# -- formulas: never written back unescaped --------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_formula_cells_come_out_escaped(workdir: Path, demo_bundle_dir: Path, suffix: str) -> None:
    """Case ids are copied from the input into the predictions: each formula comes out with a leading quote."""
    frame = pd.DataFrame({"case_id": FORMULAS, "title": ["小区路灯坏了"] * len(FORMULAS), "body": FORMULAS})
    source = workdir / f"formulas{suffix}"
    if suffix == ".csv":
        frame.to_csv(source, index=False, lineterminator="\r\n")
    else:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        for r, values in enumerate([list(frame.columns), *frame.to_numpy().tolist()], start=1):
            for c, value in enumerate(values, start=1):
                sheet.cell(row=r, column=c, value=value).data_type = "s"  # as typed text, like a pasted export
        book.save(source)
    out = workdir / "out.csv"
    result = predict(demo_bundle_dir, source, out, "--workers", "1")
    assert result.exit_code == 0, result.output

    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == len(FORMULAS) + 1
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA_PREFIXES)]
    assert [row[0] for row in rows[1:]] == ["'" + f.strip() if f.startswith("\t") else "'" + f for f in FORMULAS]


def test_a_carriage_return_inside_a_cell_does_not_split_the_row(workdir: Path, demo_bundle_dir: Path) -> None:
    """pandas leaves a bare CR unquoted under LF line ends; readers then see two rows. Output uses CRLF."""
    source = workdir / "cr.csv"
    pd.DataFrame({"case_id": ["A\r1", "A2"], "title": ["路灯\r坏了", "燃气泄漏"]}).to_csv(
        source, index=False, lineterminator="\r\n"
    )
    out = workdir / "out.csv"
    assert predict(demo_bundle_dir, source, out, "--workers", "1").exit_code == 0
    back = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert back["case_id"].tolist() == ["A\r1", "A2"]
    assert len(list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))) == 3
