"""Values as the store keeps JSON columns: plain builtins, checked once, on every backend alike.

Two steps, kept apart on purpose. `to_json` checks and normalises a value before it is stored (strict:
NaN, infinities and unknown types are refused with the reason). `encode` and `decode` are the engine's
codec for every JSON column (orjson): the hot-issue snapshot is megabytes of JSON written every thousand
cases, and the standard library's encoder spent most of a worker's CPU on it under load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from store.tables import as_utc

_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def to_json(value: Any) -> Any:
    """A JSON-ready copy: tuples become lists, numpy scalars become numbers; errors name the problem."""
    if value is None:
        return None
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, default=_to_builtin, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot store as JSON: {exc}") from exc


def encode(value: Any) -> str:
    """The text a JSON column stores. Values reach it checked by `to_json`, or JSON-ready by construction
    (`HotspotDetector.snapshot`); datetimes and numpy values are converted as `to_json` converts them."""
    try:
        return orjson.dumps(value, default=_to_builtin, option=_ORJSON_OPTIONS).decode("utf-8")
    except orjson.JSONEncodeError:
        # What orjson refuses and the standard library takes (integers beyond 64 bits): the same text.
        return json.dumps(value, ensure_ascii=False, default=_to_builtin, allow_nan=False)


def decode(text: str | bytes) -> Any:
    return orjson.loads(text)


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
