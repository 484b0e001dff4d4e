"""Values as the store keeps JSON columns: plain builtins, checked once, on every backend alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from store.tables import as_utc


def to_json(value: Any) -> Any:
    """A JSON-ready copy: tuples become lists, numpy scalars become numbers; errors name the problem."""
    if value is None:
        return None
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, default=_to_builtin, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot store as JSON: {exc}") from exc


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
