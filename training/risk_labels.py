"""Risk labels kept as ids: join annotations (source file + case id + level + criterion + reason) with the
case files they name, at training time.

Why ids: the annotated cases are real citizen messages that must not be copied into the repository; the
labels are ours to keep. A label file (CSV) has the columns ``source`` (a case file's path relative to
the data directory, e.g. ``tipdm2020/messages_labeled.csv``), ``case_id``, ``risk_level``
(red / yellow / green), ``criterion`` (red-1 ... yellow-4, or green) and ``reason`` (one line naming the
evidence, in the annotator's words). Every label must find its case: a label that joins nothing means the
wrong data directory or version, and is an error naming the file and row, never a silent drop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.risk_cues import CRITERIA, LEVELS
from training.loading import DataError, load_cases, read_table

logger = logging.getLogger(__name__)

LABEL_COLUMNS: tuple[str, ...] = ("source", "case_id", "risk_level", "criterion", "reason")
_CRITERIA_OF: dict[str, set[str]] = {
    "red": {c for c in CRITERIA if c.startswith("red-")},
    "yellow": {c for c in CRITERIA if c.startswith("yellow-")},
    "green": {"green"},
}
#: Where the shared real data sits when training runs from the project's root.
DEFAULT_DATA_DIR = Path("../shared/data")


class SharedDataMissing(DataError):
    """The data directory a label file joins with is absent (as on a user's machine)."""


@dataclass
class JoinReport:
    """What joining the label files did to the training cases (for the CLI and MLflow)."""

    labels: int = 0
    #: labels whose case was already among the training cases (risk level set on that row)
    matched: int = 0
    #: labels whose case was not: added as a row (a risk-only row when its file has no department)
    added: int = 0
    #: matched rows whose own risk level differed from the label (the label file wins)
    overridden: int = 0
    #: labels of a copy of a case another label had already added (the first label stands)
    folded: int = 0

    def summary(self) -> dict[str, int]:
        return {"risk_labels": self.labels, "risk_labels_matched": self.matched,
                "risk_labels_added": self.added, "risk_labels_overridden": self.overridden,
                "risk_labels_folded": self.folded}


def read_label_file(path: str | Path) -> pd.DataFrame:
    """The rows of one label file, checked: known level, a criterion of that level, a source and a case id."""
    file = str(path)
    table = read_table(path)
    missing = [c for c in LABEL_COLUMNS if c not in table.columns]
    if missing:
        found = ", ".join(str(c) for c in table.columns)
        raise DataError(file, f"missing column(s) {', '.join(missing)}; found [{found}]; "
                              f"a label file has {', '.join(LABEL_COLUMNS)}")
    table = table[list(LABEL_COLUMNS)].astype(object).where(table[list(LABEL_COLUMNS)].notna(), "")
    for i, row in enumerate(table.itertuples(index=False), start=2):
        level = str(row.risk_level).strip().lower()
        criterion = str(row.criterion).strip().lower()
        if level not in LEVELS:
            raise DataError(file, f"unknown risk level '{str(row.risk_level)[:20]}' (expected red, yellow or green)",
                            row=i, column="risk_level")
        if criterion not in _CRITERIA_OF[level]:
            raise DataError(file, f"criterion '{str(row.criterion)[:20]}' does not belong to level {level} "
                                  f"(expected one of {', '.join(sorted(_CRITERIA_OF[level]))})",
                            row=i, column="criterion")
        for column in ("source", "case_id"):
            if not str(getattr(row, column)).strip():
                raise DataError(file, f"empty {column}", row=i, column=column)
    table["risk_level"] = table["risk_level"].map(lambda v: str(v).strip().lower())
    table["criterion"] = table["criterion"].map(lambda v: str(v).strip().lower())
    table["source"] = table["source"].map(lambda v: str(v).strip())
    table["case_id"] = table["case_id"].map(lambda v: str(v).strip())
    table["label_file"] = file
    table["label_row"] = range(2, len(table) + 2)
    return table


def _source_path(data_dir: Path, source: str, file: str, row: int) -> Path:
    relative = Path(source)
    if relative.is_absolute() or ".." in relative.parts:
        raise DataError(file, f"source '{source[:80]}' must be a path inside the data directory", row=row,
                        column="source")
    path = data_dir / relative
    if not path.is_file():
        raise DataError(file, f"source '{source[:80]}' is not a file under {data_dir}", row=row, column="source")
    return path


def join_risk_labels(label_files: Sequence[str | Path], data_dir: str | Path = DEFAULT_DATA_DIR) -> pd.DataFrame:
    """The labelled cases: each label's case read from its source file under ``data_dir``, in the loader's
    canonical columns (`training.loading.load_cases`), with ``risk_level`` and ``criterion`` from the label.

    Raises `SharedDataMissing` when ``data_dir`` does not exist, and `DataError` (file, row, column) for a
    bad label or one whose case is not in its source file.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SharedDataMissing(str(data_dir), "the data directory the risk labels join with is absent")
    labels = pd.concat([read_label_file(p) for p in label_files], ignore_index=True)
    dup = labels.duplicated(["source", "case_id"], keep="first")
    if dup.any():
        first = labels[dup].iloc[0]
        raise DataError(first["label_file"], f"case {first['case_id'][:40]} of {first['source'][:80]} is labelled "
                                             "twice", row=int(first["label_row"]), column="case_id")
    parts = []
    for source, group in labels.groupby("source", sort=False):
        first = group.iloc[0]
        path = _source_path(data_dir, str(source), first["label_file"], int(first["label_row"]))
        cases = load_cases([path]).frame.drop(columns=["risk_level"])
        cases = cases.drop_duplicates("case_id", keep="first").set_index("case_id", drop=False)
        absent = group[~group["case_id"].isin(cases.index)]
        if len(absent):
            bad = absent.iloc[0]
            raise DataError(bad["label_file"], f"{len(absent)} label(s) name cases absent from {path} "
                                               f"(first: case_id {bad['case_id'][:40]})",
                            row=int(bad["label_row"]), column="case_id")
        joined = cases.loc[group["case_id"]].reset_index(drop=True)
        joined["risk_level"] = group["risk_level"].to_numpy()
        joined["criterion"] = group["criterion"].to_numpy()
        joined["label_source"] = "annotation"
        parts.append(joined)
    out = pd.concat(parts, ignore_index=True)
    logger.info("joined %d risk labels from %d file(s) with %s", len(out), len(label_files), data_dir)
    return out


def merge_risk_labels(frame: pd.DataFrame, labelled: pd.DataFrame) -> tuple[pd.DataFrame, JoinReport]:
    """The training cases with the joined labels applied: a labelled copy of a training case (same text
    key) gives that row its risk level and criterion; other labelled cases are added as rows (copies among
    them folded to the first)."""
    report = JoinReport(labels=len(labelled))
    frame = frame.copy()
    if "criterion" not in frame.columns:
        frame["criterion"] = None
    position = {key: i for i, key in enumerate(frame["dedup_key"])}
    extra = []
    for _, row in labelled.iterrows():
        i = position.get(row["dedup_key"])
        if i is None:
            position[row["dedup_key"]] = len(frame) + len(extra)
            extra.append(row)
            continue
        if i >= len(frame):  # a copy of a case another label already added: the first label stands
            report.folded += 1
            continue
        report.matched += 1
        index = frame.index[i]
        old = frame.at[index, "risk_level"]
        if isinstance(old, str) and old and old != row["risk_level"]:
            report.overridden += 1
        frame.at[index, "risk_level"] = row["risk_level"]
        frame.at[index, "criterion"] = row["criterion"]
    if extra:
        added = pd.DataFrame(extra).reset_index(drop=True)
        # Ids are unique per file, not across files: an added case whose id is taken is named by its file.
        taken = set(frame["case_id"].astype(str))
        added["case_id"] = [
            f"{Path(str(f)).stem}:{c}" if str(c) in taken else str(c)
            for f, c in zip(added["source_file"], added["case_id"], strict=True)
        ]
        report.added = len(added)
        frame = pd.concat([frame, added[[c for c in added.columns if c in frame.columns]]], ignore_index=True)
    return frame, report
