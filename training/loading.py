"""Reading grievance tables (CSV / TSV / XLSX / Parquet) into one canonical frame, with a report.

Every row that is read ends up either in the frame, in `LoadReport.rejected`, or in the count of
duplicates folded into an earlier copy: nothing is dropped silently. Errors that make a file unusable
raise `DataError`, whose message names the file and, where it applies, the row and the column.

Logs carry counts, file names and row numbers only, never case text or personal data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.csv_safety import unescape_formula
from features.text import case_text, mask_personal_data, normalise

logger = logging.getLogger(__name__)

CANONICAL_COLUMNS = ("case_id", "reporter_id", "title", "body", "created_at", "department", "risk_level")
#: Columns added by `load_cases` after the canonical ones (then come the file's extra columns).
SOURCE_COLUMNS = ("source_file", "source_row")
KEY_COLUMNS = ("dedup_key", "group_key")
_DERIVED_COLUMNS = SOURCE_COLUMNS + KEY_COLUMNS

#: Source header (stripped; English lower-cased) -> canonical column name.
COLUMN_ALIASES: dict[str, str] = {
    # TipDM 2020 / 网络问政 exports
    "留言编号": "case_id",
    "留言用户": "reporter_id",
    "留言主题": "title",
    "留言时间": "created_at",
    "留言详情": "body",
    "一级标签": "department",
    "一级分类": "department",
    "风险等级": "risk_level",
    # English
    "case_id": "case_id",
    "id": "case_id",
    "reporter_id": "reporter_id",
    "user_id": "reporter_id",
    "title": "title",
    "subject": "title",
    "body": "body",
    "text": "body",
    "content": "body",
    "created_at": "created_at",
    "time": "created_at",
    "department": "department",
    "label": "department",
    "risk_level": "risk_level",
    "risk": "risk_level",
}

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + EXCEL_SUFFIXES + PARQUET_SUFFIXES

RISK_LEVELS = ("red", "yellow", "green")
_RISK_ALIASES = {
    "red": "red",
    "yellow": "yellow",
    "green": "green",
    "红": "red",
    "红色": "red",
    "黄": "yellow",
    "黄色": "yellow",
    "绿": "green",
    "绿色": "green",
}

#: A body with at least this many characters (not counting whitespace and punctuation) is distinctive
#: enough that the same body under another title is the same case for grouping.
GROUP_BODY_MIN_CHARS = 30

REASON_NO_TEXT = "no title and no body"
REASON_NO_DEPARTMENT = "no department label"
REASON_SUPERSEDED = "superseded by a reviewer's decision on the same case_id"

#: Rows whose `label_source` column says `review` (written by `triage export-reviews`) carry a
#: reviewer's decision: they replace other rows of the same case_id and win label votes among copies.
LABEL_SOURCE_COLUMN = "label_source"
REVIEW_LABEL_SOURCE = "review"
_REASON_CONFLICT_PREFIX = "duplicate copies carry conflicting labels"

_VALUE_PREVIEW = 40  # longest cell value quoted in a message (labels and dates, never case text)


class DataError(ValueError):
    """Raised for a file that cannot be used.

    Its message names the file, and where it applies the row and the column.
    """

    def __init__(
        self, file: str | Path, message: str, *, column: str | None = None, row: int | None = None
    ) -> None:
        self.file = str(file)
        self.reason = message
        self.column = column
        self.row = row
        where = self.file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep pickling working with keyword-only arguments
        return (_rebuild_data_error, (self.file, self.reason, self.column, self.row))


def _rebuild_data_error(file: str, message: str, column: str | None, row: int | None) -> DataError:
    return DataError(file, message, column=column, row=row)


@dataclass
class Rejected:
    """A row that was read but not used, and why (never a silent drop)."""

    file: str
    row: int
    reason: str


@dataclass
class LoadReport:
    files: list[str]
    rows_read: int
    rows_kept: int
    rejected: list[Rejected] = field(default_factory=list)
    duplicates_merged: int = 0
    #: duplicate groups whose department labels disagreed (majority kept; ties rejected)
    conflicting_labels: int = 0
    unparsed_dates: list[Rejected] = field(default_factory=list)
    #: duplicate groups whose risk levels disagreed (majority kept; ties set to None)
    conflicting_risk_levels: int = 0

    def summary(self) -> dict[str, int]:
        """Flat counts, for MLflow params/metrics and the CLI."""
        reasons = Counter(_reason_kind(r.reason) for r in self.rejected)
        return {
            "files": len(self.files),
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_rejected": len(self.rejected),
            "rejected_no_text": reasons["no_text"],
            "rejected_no_department": reasons["no_department"],
            "rejected_label_conflict": reasons["label_conflict"],
            "superseded_by_review": reasons["superseded"],
            "duplicates_merged": self.duplicates_merged,
            "conflicting_labels": self.conflicting_labels,
            "conflicting_risk_levels": self.conflicting_risk_levels,
            "unparsed_dates": len(self.unparsed_dates),
        }


def _reason_kind(reason: str) -> str:
    if reason == REASON_NO_TEXT:
        return "no_text"
    if reason == REASON_NO_DEPARTMENT:
        return "no_department"
    if reason.startswith(_REASON_CONFLICT_PREFIX):
        return "label_conflict"
    if reason == REASON_SUPERSEDED:
        return "superseded"
    return "other"


@dataclass
class LoadedCases:
    frame: pd.DataFrame
    report: LoadReport


# --------------------------------------------------------------------------------------------------
# Reading one table
# --------------------------------------------------------------------------------------------------


def _preview(value: object) -> str:
    text = str(value)
    return text if len(text) <= _VALUE_PREVIEW else text[: _VALUE_PREVIEW - 1] + "…"


def _one_line(exc: BaseException) -> str:
    """`TypeName: first line of the message`, without traceback text."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cell_to_str(value: object) -> object:
    """A cell as a string; datetimes stay datetimes; missing -> ""."""
    if value is None or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _check_unique_headers(file: str, headers: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in headers:
        if name in seen and name:
            raise DataError(file, f"column header '{name}' appears more than once", column=name)
        seen.add(name)


def _decode(file: str, raw: bytes, encoding: str) -> str:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = raw.decode(codec)
    except LookupError:
        raise DataError(file, f"unknown encoding '{encoding}'") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1].hex()
        hint = (
            "the file is probably in a Chinese Windows encoding: try --encoding gb18030"
            if codec in ("utf-8-sig",)
            else "try another --encoding (utf-8 or gb18030)"
        )
        raise DataError(
            file,
            f"byte 0x{bad} at byte offset {exc.start} (line {line}) is not valid {encoding}; {hint}",
        ) from None
    return text.removeprefix("\ufeff")


def _read_csv(file: str, path: Path, encoding: str) -> pd.DataFrame:
    text = _decode(file, path.read_bytes(), encoding)
    if not text.strip():
        raise DataError(file, "has no rows (the file holds no header and no data)")
    first_line = text.split("\n", 1)[0]
    suffix = path.suffix.lower()
    if suffix == ".tsv" or (suffix == ".txt" and "\t" in first_line and "," not in first_line):
        sep = "\t"
    else:
        sep = ","
    try:
        header = next(csv.reader(io.StringIO(first_line), delimiter=sep))
    except (csv.Error, StopIteration) as exc:
        raise DataError(file, f"cannot read the header row ({_one_line(exc)})") from None
    _check_unique_headers(file, [h.strip() for h in header])
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,  # keep row numbers as a spreadsheet shows them
        )
    except pd.errors.EmptyDataError:
        raise DataError(file, "has no rows (the file holds no header and no data)") from None
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        raise DataError(file, f"cannot read as CSV ({_one_line(exc)})") from None
    frame = frame.fillna("")
    # Trailing blank lines are layout, not rows (a blank line between rows is kept as a row, so the
    # row numbers stay those a spreadsheet shows, and it is reported as a row without text).
    blank = (frame.apply(lambda col: col.str.strip()) == "").all(axis=1).to_numpy()
    end = len(frame)
    while end and blank[end - 1]:
        end -= 1
    return frame.iloc[:end]


def _read_excel(file: str, path: Path) -> pd.DataFrame:
    import openpyxl  # imported here: serving never reads spreadsheets

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, lxml errors... for corrupt files
        raise DataError(file, f"cannot read as an Excel workbook ({_one_line(exc)})") from None
    try:
        sheets = book.worksheets
        if not sheets:
            raise DataError(file, "has no rows (the workbook has no worksheet)")
        if len(sheets) > 1:
            logger.warning(
                "%s: reading the first worksheet only (%d more are ignored)", file, len(sheets) - 1
            )
        try:
            rows = [list(r) for r in sheets[0].iter_rows(values_only=True)]
        except Exception as exc:
            raise DataError(file, f"cannot read as an Excel workbook ({_one_line(exc)})") from None
    finally:
        book.close()
    while rows and all(v is None or (isinstance(v, str) and not v.strip()) for v in rows[-1]):
        rows.pop()  # trailing empty rows are formatting, not data
    if not rows:
        raise DataError(file, "has no rows (the worksheet is empty)")
    width = max(len(r) for r in rows)
    header = [
        str(v).strip() if v is not None and str(v).strip() else f"Unnamed: {i}"
        for i, v in enumerate(rows[0] + [None] * (width - len(rows[0])))
    ]
    _check_unique_headers(file, header)
    data = [[_cell_to_str(v) for v in r + [None] * (width - len(r))] for r in rows[1:]]
    frame = pd.DataFrame(data, columns=header, dtype=object)
    # drop unnamed columns that hold nothing (cells formatted beyond the table)
    empty_unnamed = [c for c in frame.columns if c.startswith("Unnamed: ") and (frame[c] == "").all()]
    return frame.drop(columns=empty_unnamed)


def _read_parquet(file: str, path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except Exception as exc:  # pyarrow.ArrowInvalid, OSError, ... : one line, no traceback
        raise DataError(file, f"cannot read as Parquet ({_one_line(exc)})") from None
    out = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            out[str(name)] = col.dt.tz_localize(None)
        elif pd.api.types.is_datetime64_dtype(col.dtype):
            out[str(name)] = col
        else:
            out[str(name)] = pd.Series([_cell_to_str(v) for v in col], index=frame.index, dtype=object)
    result = pd.DataFrame(out, index=frame.index).reset_index(drop=True)
    _check_unique_headers(file, list(result.columns))
    return result


def read_table(path: str | Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read one table with every cell as a string ("" when empty).

    Datetimes from XLSX and Parquet may stay datetimes. CSV is read with the given encoding (utf-8
    with or without BOM by default); `.tsv` files are tab-separated. Raises `DataError` naming the
    file for a missing, empty, undecodable, corrupt or unsupported file.
    """
    file = str(path)
    path = Path(path)
    if not path.exists():
        raise DataError(file, "file not found")
    if path.is_dir():
        raise DataError(file, "is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            file,
            f"unsupported file type '{suffix or '(none)'}' (supported: {', '.join(SUPPORTED_SUFFIXES)})",
        )
    if path.stat().st_size == 0:
        raise DataError(file, "has no rows (the file is empty, 0 bytes)")
    if suffix in CSV_SUFFIXES:
        frame = _read_csv(file, path, encoding)
        if LABEL_SOURCE_COLUMN in frame.columns:
            # Our own export (`triage export-reviews`): its formula guard comes off, so '-EXP-13 is the
            # case -EXP-13 again and its review still overrides that case's other labels.
            frame = frame.map(unescape_formula)
    elif suffix in EXCEL_SUFFIXES:
        frame = _read_excel(file, path)
    else:
        frame = _read_parquet(file, path)
    if len(frame) == 0:
        raise DataError(file, "has no rows (only a header)")
    return frame


# --------------------------------------------------------------------------------------------------
# Column mapping and value cleaning
# --------------------------------------------------------------------------------------------------


def _canonical_name(header: str) -> str | None:
    key = header.strip()
    return COLUMN_ALIASES.get(key) or COLUMN_ALIASES.get(key.lower())


def _accepted(canonical: str) -> str:
    return ", ".join(k for k, v in COLUMN_ALIASES.items() if v == canonical)


def _map_columns(file: str, frame: pd.DataFrame) -> pd.DataFrame:
    rename: dict[str, str] = {}
    source_of: dict[str, str] = {}
    dropped: list[str] = []
    for header in frame.columns:
        canonical = _canonical_name(str(header))
        if canonical is None:
            name = str(header).strip()
            if name in _DERIVED_COLUMNS or name in CANONICAL_COLUMNS:
                dropped.append(str(header))
            else:
                rename[header] = name
            continue
        if canonical in source_of:
            raise DataError(
                file,
                f"columns '{source_of[canonical]}' and '{header}' both map to '{canonical}'; keep only one",
                column=canonical,
            )
        source_of[canonical] = str(header)
        rename[header] = canonical
    if dropped:
        # Typically a file exported by this tool: these columns are recomputed, not trusted.
        logger.info("%s: ignoring column(s) %s (recomputed by the loader)", file, ", ".join(dropped))
    return frame.drop(columns=dropped).rename(columns=rename)


def _text_column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    return pd.Series([normalise(_as_text(v)) for v in frame[name]], index=frame.index, dtype=object)


def _as_text(value: object) -> str:
    value = _cell_to_str(value)
    return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else str(value)


def _optional_str(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    values = [_as_text(v).strip() or None for v in frame[name]]
    return pd.Series(values, index=frame.index, dtype=object)


def _risk_column(file: str, frame: pd.DataFrame, rows: Sequence[int]) -> pd.Series:
    if "risk_level" not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    out: list[str | None] = []
    for value, row in zip(frame["risk_level"], rows, strict=True):
        text = unicodedata.normalize("NFKC", _as_text(value)).strip()
        if not text:
            out.append(None)
            continue
        level = _RISK_ALIASES.get(text.lower())
        if level is None:
            raise DataError(
                file,
                f"unknown risk level '{_preview(text)}' (expected red, yellow or green)",
                row=row,
                column="risk_level",
            )
        out.append(level)
    return pd.Series(out, index=frame.index, dtype=object)


_CHINESE_DATE = re.compile(r"(\d{2,4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
_TRAILING_TZ = re.compile(
    r"(\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE
)


def _clean_date_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip()
    text = _CHINESE_DATE.sub(lambda m: f"{m[1]}-{m[2]}-{m[3]} ", text).strip()
    # Keep the wall-clock time as written; a case's local time is what matters here.
    return _TRAILING_TZ.sub(r"\1", text)


def _parse_one_date(value: object) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if ts is pd.NaT:
        return pd.NaT
    return ts.tz_localize(None) if ts.tzinfo is not None else ts


def _parse_dates(file: str, frame: pd.DataFrame, rows: Sequence[int]) -> tuple[pd.Series, list[Rejected]]:
    """created_at as naive datetime64; unparseable non-empty values -> NaT, listed."""
    if "created_at" not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]"), []
    col = frame["created_at"]
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_localize(None).astype("datetime64[us]"), []
    if pd.api.types.is_datetime64_dtype(col.dtype):
        return col.astype("datetime64[us]"), []

    prepared: list[object] = []
    for value in col:
        if isinstance(value, pd.Timestamp | dt.datetime):
            ts = pd.Timestamp(value)
            prepared.append(ts.tz_localize(None) if ts.tzinfo is not None else ts)
        else:
            text = _as_text(value)
            prepared.append(_clean_date_text(text) if text.strip() else None)
    series = pd.Series(prepared, index=frame.index, dtype=object)
    try:
        parsed = pd.to_datetime(series, format="mixed", errors="coerce")
    except (ValueError, TypeError, OverflowError):
        # e.g. offsets the cleaning did not catch: fall back to one value at a time
        parsed = pd.Series([_parse_one_date(v) for v in prepared], index=frame.index)
        parsed = pd.to_datetime(parsed, errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    parsed = parsed.astype("datetime64[us]")

    unparsed: list[Rejected] = []
    failed = parsed.isna().to_numpy() & series.notna().to_numpy()
    for i in failed.nonzero()[0]:
        raw = _as_text(col.iloc[i]).strip()
        unparsed.append(
            Rejected(file, int(rows[i]), f"column 'created_at': cannot parse date '{_preview(raw)}'")
        )
    return parsed, unparsed


# --------------------------------------------------------------------------------------------------
# Keys for de-duplication and grouping
# --------------------------------------------------------------------------------------------------


class _StripTable(dict):
    """str.translate table deleting whitespace and Unicode punctuation (P*) and symbols (S*).

    Filled lazily: only the characters that actually occur are ever classified.
    """

    def __missing__(self, code_point: int) -> int | None:
        ch = chr(code_point)
        result = None if ch.isspace() or unicodedata.category(ch)[0] in "PS" else code_point
        self[code_point] = result
        return result


_STRIP_TABLE = _StripTable()


def _squash(text: str) -> str:
    return text.translate(_STRIP_TABLE)


def text_keys(title: str, body: str) -> tuple[str, str]:
    """(dedup_key, group_key) of one case.

    dedup_key: the model text without whitespace, punctuation and symbols, so a copy whose spaces
    were stripped, or the same message posted again under another id, gets the same key.
    group_key: the body's key when the body is long enough to be distinctive (the same body under
    two titles is one group), else the dedup_key. Lengths are counted on the key (without whitespace
    and punctuation), so a spaced body and its stripped copy always get the same decision.
    """
    full = case_text(title, body)
    dedup_key = _squash(full) or full  # a text of punctuation only is compared as written
    body_key = _squash(mask_personal_data(normalise(body)))  # == case_text("", body)
    group_key = body_key if len(body_key) >= GROUP_BODY_MIN_CHARS else dedup_key
    return dedup_key, group_key


# --------------------------------------------------------------------------------------------------
# load_cases
# --------------------------------------------------------------------------------------------------


def _load_one(
    path: str | Path, *, require_department: bool, encoding: str
) -> tuple[pd.DataFrame, list[Rejected]]:
    file = str(path)
    raw = read_table(path, encoding=encoding)
    frame = _map_columns(file, raw)
    if "title" not in frame.columns and "body" not in frame.columns:
        found = ", ".join(str(c) for c in raw.columns)
        raise DataError(
            file,
            f"no text column: found columns [{found}]; accepted title headers: {_accepted('title')}; "
            f"accepted body headers: {_accepted('body')}",
        )
    if require_department and "department" not in frame.columns:
        raise DataError(
            file,
            "no department (label) column, which training needs; "
            f"accepted headers: {_accepted('department')}",
        )
    frame = frame.reset_index(drop=True)
    rows = list(range(2, len(frame) + 2))  # header is row 1, as a spreadsheet shows it
    stem = Path(path).stem

    case_ids = [
        _as_text(v).strip() or f"{stem}-{row}"
        for v, row in zip(
            frame["case_id"] if "case_id" in frame.columns else [""] * len(frame), rows, strict=True
        )
    ]
    created_at, unparsed = _parse_dates(file, frame, rows)
    out = pd.DataFrame(
        {
            "case_id": pd.Series(case_ids, dtype=object),
            "reporter_id": _optional_str(frame, "reporter_id"),
            "title": _text_column(frame, "title"),
            "body": _text_column(frame, "body"),
            "created_at": created_at,
            "department": _optional_str(frame, "department"),
            "risk_level": _risk_column(file, frame, rows),
            "source_file": pd.Series([file] * len(frame), dtype=object),
            "source_row": pd.Series(rows, dtype="int64"),
        }
    )
    extras = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    for name in extras:
        out[name] = frame[name].to_numpy()
    return out, unparsed


def _majority(labels: Sequence[str | None]) -> tuple[str | None, bool, list[str]]:
    """(winning label or None on a tie, whether the labels disagreed, distinct labels in order)."""
    present = [x for x in labels if x is not None]
    distinct = list(dict.fromkeys(present))
    if len(distinct) <= 1:
        return (distinct[0] if distinct else None), False, distinct
    counts = Counter(present).most_common()
    if counts[0][1] == counts[1][1]:
        return None, True, distinct
    return counts[0][0], True, distinct


def _reviewed_rows(frame: pd.DataFrame) -> pd.Series:
    """True for rows labeled by a reviewer (`label_source` = review)."""
    if LABEL_SOURCE_COLUMN not in frame.columns:
        return pd.Series(False, index=frame.index)
    source = frame[LABEL_SOURCE_COLUMN].map(lambda v: v.strip().lower() if isinstance(v, str) else "")
    return source == REVIEW_LABEL_SOURCE


def _apply_reviews(frame: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """Drop other rows of a case_id that a reviewer decided: the reviewer's labels replace them.

    Applies across files (an export beside the original data) and whatever the other rows' text.
    """
    reviewed = _reviewed_rows(frame)
    if not reviewed.any():
        return frame
    superseded = frame["case_id"].isin(set(frame.loc[reviewed, "case_id"])) & ~reviewed
    report.rejected.extend(
        Rejected(f, int(r), REASON_SUPERSEDED)
        for f, r in zip(frame.loc[superseded, "source_file"], frame.loc[superseded, "source_row"], strict=True)
    )
    return frame[~superseded]


def _fold_duplicates(frame: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """Keep the first row of each dedup_key group, with the majority labels of the group.

    When some copies carry a reviewer's decision, only those copies vote.
    """
    dup_mask = frame["dedup_key"].duplicated(keep=False)
    if not dup_mask.any():
        return frame
    reviewed = _reviewed_rows(frame)
    drop: list[int] = []
    for _, group in frame[dup_mask].groupby("dedup_key", sort=False):
        voters = group[reviewed[group.index]] if reviewed[group.index].any() else group
        first = voters.index[0]  # a reviewed copy is the one kept, under its case_id
        department, dept_conflict, dept_labels = _majority(voters["department"].tolist())
        if dept_conflict:
            report.conflicting_labels += 1
            if department is None:  # tie: no copy can be trusted
                reason = f"{_REASON_CONFLICT_PREFIX}: {' vs '.join(dept_labels)}"
                report.rejected.extend(
                    Rejected(f, int(r), reason)
                    for f, r in zip(group["source_file"], group["source_row"], strict=True)
                )
                drop.extend(group.index)
                continue
        risk, risk_conflict, _ = _majority(voters["risk_level"].tolist())
        if risk_conflict:
            report.conflicting_risk_levels += 1
        frame.at[first, "department"] = department
        frame.at[first, "risk_level"] = risk
        drop.extend(i for i in group.index if i != first)
        report.duplicates_merged += len(group) - 1
    return frame.drop(index=drop)


def load_cases(
    paths: Sequence[str | Path],
    *,
    require_department: bool = False,
    training: bool = False,
    encoding: str = "utf-8",
    keep_risk_only: bool = False,
    with_keys: bool = True,
) -> LoadedCases:
    """Read grievance tables into one canonical frame.

    Columns: CANONICAL_COLUMNS, then source_file / source_row (the row as a spreadsheet numbers it),
    dedup_key / group_key, then any other columns of the files. With `training=True`, copies of one
    message are folded into the first (majority label; ties rejected); otherwise every usable row is
    kept, one output row per input row. Rows labeled by a reviewer (`label_source` = review, as
    `triage export-reviews` writes) replace every other row of their case_id, and outvote unreviewed
    copies of the same text. With `require_department`, a row without a department is rejected unless
    `keep_risk_only` is set and it has a risk level: such a row trains the risk model, not the router.
    ``with_keys`` False leaves out dedup_key / group_key (scoring never reads them, and they cost a
    normalisation of every text); training always computes them.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ValueError("load_cases needs at least one file")
    files = [str(p) for p in paths]
    frames: list[pd.DataFrame] = []
    unparsed: list[Rejected] = []
    for path in paths:
        one, bad_dates = _load_one(path, require_department=require_department, encoding=encoding)
        frames.append(one)
        unparsed.extend(bad_dates)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    rows_read = len(frame)
    report = LoadReport(files=files, rows_read=rows_read, rows_kept=0, unparsed_dates=unparsed)

    no_text = (frame["title"] == "") & (frame["body"] == "")
    no_label = frame["department"].isna() & ~no_text if require_department else pd.Series(False, frame.index)
    if keep_risk_only:
        no_label &= frame["risk_level"].isna()
    for mask, reason in ((no_text, REASON_NO_TEXT), (no_label, REASON_NO_DEPARTMENT)):
        report.rejected.extend(
            Rejected(f, int(r), reason)
            for f, r in zip(frame.loc[mask, "source_file"], frame.loc[mask, "source_row"], strict=True)
        )
    frame = _apply_reviews(frame[~(no_text | no_label)], report).copy()

    if with_keys or training:
        keys = [text_keys(t, b) for t, b in zip(frame["title"], frame["body"], strict=True)]
        frame["dedup_key"] = pd.Series([k[0] for k in keys], index=frame.index, dtype=object)
        frame["group_key"] = pd.Series([k[1] for k in keys], index=frame.index, dtype=object)

    if training:
        frame = _fold_duplicates(frame, report)

    extras = [c for c in frame.columns if c not in CANONICAL_COLUMNS + _DERIVED_COLUMNS]
    derived = [c for c in _DERIVED_COLUMNS if c in frame.columns]
    frame = frame[[*CANONICAL_COLUMNS, *derived, *extras]].reset_index(drop=True)
    frame["source_row"] = frame["source_row"].astype("int64")
    report.rejected.sort(key=lambda r: (files.index(r.file) if r.file in files else 0, r.row))
    report.rows_kept = len(frame)
    if report.rows_read != report.rows_kept + len(report.rejected) + report.duplicates_merged:
        raise AssertionError("load_cases lost rows: every row must be kept, rejected or merged")
    logger.info(
        "loaded %d file(s): %d rows read, %d kept, %d rejected, %d duplicates merged, "
        "%d conflicting labels, %d conflicting risk levels, %d unparsed dates",
        len(files),
        report.rows_read,
        report.rows_kept,
        len(report.rejected),
        report.duplicates_merged,
        report.conflicting_labels,
        report.conflicting_risk_levels,
        len(report.unparsed_dates),
    )
    return LoadedCases(frame=frame, report=report)
