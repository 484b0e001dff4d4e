"""Writing CSV files that people open in spreadsheets, safely: the one place every exporter goes through.

Two hazards in case text, which comes from citizens and is never trusted:
- a cell starting with = + - @ (or tab / CR) is run as a formula by Excel and LibreOffice ("CSV injection",
  e.g. `=cmd|' /C calc'!A0`): such cells get a leading single quote, which spreadsheets show as text;
- a bare carriage return inside a cell: pandas ends lines with LF and so leaves such a cell unquoted, and
  every CSV reader (ours included) then splits the row in two. Lines end with CRLF (RFC 4180) instead,
  which makes the writer quote any cell holding CR or LF.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: First characters that make spreadsheet programs evaluate a cell (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


#: A cell starting with the guard quote itself is guarded too, so reading back is exact for every text.
GUARD = "'"


def escape_formula(value: object) -> object:
    """`value` with a leading single quote if it is text a spreadsheet would run as a formula (or that
    starts with the quote already, so `unescape_formula` gives back exactly what was written)."""
    if isinstance(value, str) and value.startswith((*FORMULA_PREFIXES, GUARD)):
        return GUARD + value
    return value


def unescape_formula(value: object) -> object:
    """The text `escape_formula` was given: one guard quote removed where `escape_formula` adds one."""
    if isinstance(value, str) and value.startswith(GUARD) and value[1:].startswith((*FORMULA_PREFIXES, GUARD)):
        return value[1:]
    return value


def escaped(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame.map(escape_formula)``, visiting only the columns that can hold text: a number, boolean or
    timestamp column never needs a guard, and `triage predict` writes seven float columns per case."""
    out = frame.copy(deep=False)
    for i, dtype in enumerate(frame.dtypes):
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype)):
            out.isetitem(i, frame.iloc[:, i].map(escape_formula))
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """UTF-8 CSV without the index, text cells formula-escaped, cells with line breaks quoted."""
    escaped(frame).to_csv(path, index=False, encoding="utf-8", lineterminator="\r\n")


def csv_text(frame: pd.DataFrame) -> str:
    """`write_csv`'s text, with a byte-order mark so spreadsheet programs read the Chinese as UTF-8."""
    return "\ufeff" + escaped(frame).to_csv(index=False, lineterminator="\r\n")
