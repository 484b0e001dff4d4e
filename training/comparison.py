"""The fixed comparison set: labelled cases every candidate and the champion are scored on at training time.

A run's own held-out split cannot decide the champion: it differs from run to run, and the champion may
have been fitted on it (a retrain on 300 rows of another data set once took `champion` that way). A
comparison set is one file of labelled cases, named in the config (`registry.comparison_set`) or with
`triage train --compare-on`; its version is the digest of what it labels, logged with every run. Its
cases are held out of training (by case id and by text), so the candidate never learns them; the
champion is scored only on those it was not fitted on either (`training.promote.held_out`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training.loading import load_cases


@dataclass(frozen=True)
class ComparisonSet:
    path: Path
    cases: pd.DataFrame
    digest: str  # sha256 of the (text key, department, risk level) rows: the set's version

    @property
    def version(self) -> str:
        return self.digest[:12]

    def describe(self) -> str:
        return f"{self.path} ({len(self.cases)} cases, version {self.version})"


def load_comparison_set(path: str | Path, *, encoding: str = "utf-8") -> ComparisonSet:
    """Read the set as training reads files (a bad file is a `DataError` naming file, row and column)."""
    cases = load_cases([path], require_department=True, encoding=encoding).frame
    h = hashlib.sha256()
    levels = cases["risk_level"] if "risk_level" in cases.columns else pd.Series([None] * len(cases))
    for key, department, level in sorted(
        zip(cases["dedup_key"].astype(str), cases["department"].astype(str), levels.fillna("").astype(str),
            strict=True)
    ):
        h.update(f"{key}\x1f{department}\x1f{level}\x1e".encode())
    return ComparisonSet(Path(path), cases.reset_index(drop=True), h.hexdigest())


def without_comparison_cases(frame: pd.DataFrame, comparison: ComparisonSet) -> tuple[pd.DataFrame, int]:
    """`frame` without the comparison set's cases (same case id or same text), and how many were removed."""
    ids = set(comparison.cases["case_id"].astype(str))
    keys = set(comparison.cases["dedup_key"].astype(str))
    held = frame["case_id"].astype(str).isin(ids) | frame["dedup_key"].astype(str).isin(keys)
    return frame[~held.to_numpy()].reset_index(drop=True), int(held.sum())
