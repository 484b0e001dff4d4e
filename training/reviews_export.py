"""`triage export-reviews`: reviewers' decisions as labeled training data.

The file has the columns `training.loading.load_cases` reads (case_id, title, body, created_at,
department, risk_level), with the reviewer's department and level as the labels, followed by provenance
columns the loader carries along as extras: label_source (always `review`, which `load_cases` uses to
let these rows override other files' labels for the same case), reviewer, reviewed_at, what the model
had said, and the reviewer's note (review_note: why a decision differs from the model's). Reporter ids are
never exported; phone, ID-card and e-mail numbers in the text and notes are masked
(`features.text.mask_contact_details`), as everywhere a reviewer reads a case.

CSV is written by `features.csv_safety.write_csv`: cells that a spreadsheet would run as a formula (starting
with = + - @, tab or CR) are prefixed with a single quote, and the loader removes that quote again when it
reads an export back (`features.csv_safety.unescape_formula`); Parquet keeps values as they are.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from features.csv_safety import FORMULA_PREFIXES, escape_formula, write_csv  # noqa: F401 (re-exported)
from features.text import mask_contact_details
from store import Store, redact
from store.reviewed import ReviewedCase, reviewed_cases

logger = logging.getLogger(__name__)

LABEL_SOURCE = "review"
EXPORT_COLUMNS = (
    "case_id", "title", "body", "created_at", "department", "risk_level",
    "label_source", "reviewer", "reviewed_at", "model_name", "model_version", "model_department", "model_level",
    "channel", "prediction_id", "review_note",
)
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


class ExportError(ValueError):
    """The export cannot be written; the message says why (database, output file, or no reviews)."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def reviews_frame(cases: Sequence[ReviewedCase]) -> pd.DataFrame:
    """One row per reviewed case in the training format, reviewer decisions as labels."""
    rows = [
        {
            "case_id": c.case_id,
            "title": mask_contact_details(c.title),
            "body": mask_contact_details(c.body),
            "created_at": _iso(c.created_at),
            "department": c.decided_department,
            "risk_level": c.decided_level,
            "label_source": LABEL_SOURCE,
            "reviewer": c.reviewer,
            "reviewed_at": _iso(c.reviewed_at),
            "model_name": c.model_name,
            "model_version": c.model_version,
            "model_department": c.model_department,
            "model_level": c.model_level,
            "channel": c.channel,
            "prediction_id": str(c.prediction_id),
            "review_note": mask_contact_details(c.note) if c.note else "",
        }
        for c in cases
    ]
    return pd.DataFrame(rows, columns=list(EXPORT_COLUMNS), dtype=object)


def default_output_path(now: datetime | None = None) -> Path:
    """`var/exports/reviews-<UTC time>.csv` under the working directory: `var/` is git-ignored, and the
    folder is made private (0700), since the file holds citizens' text."""
    folder = Path("var") / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return folder / f"reviews-{stamp}.csv"


def tracked_by_git(path: Path) -> bool:
    """Whether `path` lies in a git work tree and git would not ignore it (so a commit could take the
    citizens' text along). False where git is absent or the folder is no work tree."""
    try:
        answer = subprocess.run(["git", "-C", str(path.parent.resolve()), "check-ignore", "-q", path.name],
                                capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return answer.returncode == 1  # 0: ignored; 128: not a work tree


def check_output_path(path: Path) -> None:
    """Refuse an unsupported suffix, a missing folder, or a place git would commit, before anything is read."""
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise ExportError(f"{path}: unsupported output type '{suffix or '(none)'}'; use .csv or .parquet")
    if not path.parent.exists():
        raise ExportError(f"{path}: the folder {path.parent} does not exist")
    if tracked_by_git(path):
        raise ExportError(
            f"{path}: inside a git work tree and not ignored, so a commit could take citizens' text along; "
            "write under var/exports/ (the default) or another ignored or outside folder"
        )


def write_reviews(frame: pd.DataFrame, path: Path) -> None:
    """CSV (UTF-8, formula cells escaped) or Parquet, by the path's suffix."""
    check_output_path(path)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            frame.to_parquet(path, index=False)
        else:
            write_csv(frame, path)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})") from None


def _where(database_url: str) -> str:
    try:
        return redact(database_url)
    except (SQLAlchemyError, ValueError):
        return "the given database URL (unparsable)"


def load_reviewed(
    database_url: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[ReviewedCase]:
    """Reviewed cases from the audit store at `database_url`; ExportError when there are none.

    Database failures become one-line messages naming the (password-redacted) URL, never a traceback.
    """
    where = _where(database_url)
    try:
        store = Store.from_url(database_url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise ExportError(f"cannot open the audit store {where}: {type(exc).__name__}: {exc}") from None
    try:
        cases = reviewed_cases(store, since=since, until=until)
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        hint = ""
        if "no such table" in first or "does not exist" in first:
            hint = " (the database has no audit tables: start the service once, or run " \
                   "`python -m store.migrate upgrade head`)"
        raise ExportError(f"cannot read reviews from {where}: {first}{hint}") from None
    finally:
        store.dispose()
    if not cases:
        window = ""
        if since or until:
            window = f" between {_iso(since) or 'the start'} and {_iso(until) or 'now'}"
        raise ExportError(f"the audit store {where} holds no reviews{window}; nothing to export")
    logger.info("read %d reviewed cases from %s", len(cases), where)
    return cases


def export_reviews(
    database_url: str, out: Path, *, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """Write the store's reviewed cases to `out` and return the frame written (before escaping)."""
    check_output_path(out)
    frame = reviews_frame(load_reviewed(database_url, since=since, until=until))
    write_reviews(frame, out)
    out.chmod(0o600)  # citizens' text: readable by its owner only
    return frame
