"""Train/test splits that keep every copy of a message on one side."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def group_folds(frame: pd.DataFrame, n_splits: int, seed: int, label: str = "department") -> StratifiedGroupKFold:
    """Stratified folds over `group_key`, reduced when a small data set has too few cases per class."""
    smallest = int(frame[label].value_counts().min())
    return StratifiedGroupKFold(n_splits=max(2, min(n_splits, smallest)), shuffle=True, random_state=seed)


def train_test_split_grouped(
    frame: pd.DataFrame, test_size: float, seed: int, label: str = "department"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out about `test_size` of the cases, stratified by label, never splitting a duplicate group."""
    n_splits = max(2, round(1 / test_size))
    y = np.asarray(frame[label], dtype=object)
    groups = np.asarray(frame["group_key"], dtype=object)
    cv = group_folds(frame, n_splits, seed, label)
    train_idx, test_idx = next(cv.split(np.zeros(len(frame)), y, groups))
    return frame.iloc[train_idx].reset_index(drop=True), frame.iloc[test_idx].reset_index(drop=True)
