"""Integer keys -> vocabulary columns, looked up for a whole batch at once.

Shared by the router's word bigrams (a pair of word numbers) and the risk text model's terms (character
n-grams as numbers, word pairs): a number instead of a new Python string per term and one vectorised
look-up per batch instead of a dict look-up per term.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["KeyTable"]


class KeyTable:
    """Integer keys → vocabulary columns. A sorted search for the few keys of one request; a hash table
    (pandas' khash, built on first use) for a batch's millions, where each sorted search's cache misses
    cost more than a hash look-up (0.54 vs 0.15 s for 2.4M keys)."""

    #: Keys per look-up from which the hash table pays for itself.
    HASH_FROM = 20_000

    def __init__(self, keys: np.ndarray, columns: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys, self.columns = keys[order], columns[order]
        self._hashed: pd.Index | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def columns_of(self, keys: np.ndarray) -> np.ndarray:
        """The column of each key; -1 for a key not in the table."""
        if not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        if len(keys) >= self.HASH_FROM:
            if self._hashed is None:
                self._hashed = pd.Index(self.keys)
            at = self._hashed.get_indexer(keys)
            return np.where(at >= 0, self.columns[np.maximum(at, 0)], -1)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.columns[at], -1)

    def __getstate__(self) -> dict[str, object]:
        return {"keys": self.keys, "columns": self.columns, "_hashed": None}  # the hash table is rebuilt
