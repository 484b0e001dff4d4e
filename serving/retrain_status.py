"""The latest scheduled retraining run (`triage retrain`), as the dashboard shows it.

Read from MLflow (experiment `retraining`), which the service already reaches for its model; kept for a
minute so a dashboard refresh does not query the tracking server each time. An unreachable server is
a sentence on the dashboard, not an error page.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from models.tracking import RETRAINING_EXPERIMENT, latest_run

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
_lock = threading.Lock()
_cached: tuple[float, dict[str, Any] | None, str | None] | None = None


def last_retraining(*, max_age: float = CACHE_SECONDS) -> tuple[dict[str, Any] | None, str | None]:
    """(the latest run's outcome, or None; why it could not be read, or None)."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < max_age:
            return _cached[1], _cached[2]
    try:
        run, error = latest_run(RETRAINING_EXPERIMENT), None
    except Exception as exc:  # the tracking server is down or unreachable: say so, keep the page
        logger.warning("cannot read the latest retraining run: %s", type(exc).__name__)
        run, error = None, f"无法读取 MLflow 中的重训练记录（{type(exc).__name__}）。"
    with _lock:
        _cached = (time.monotonic(), run, error)
    return run, error
