"""The drift report: served traffic in a window against the loaded model's reference profile, by week,
beside the results reviewers measured over the same weeks.

One function (`drift_report`) that the API route and the dashboard both call. Its inputs are the audit
store's predictions and case text (`store.drift_queries`) and the bundle's reference profile
(`models.profile`); the comparison and thresholds are `models.drift`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from features.prepared import prepare
from models.drift import DriftConfig, compare, load_drift_config
from models.mlflow_model import LoadedModel
from models.profile import CaseFigures, case_figures, router_vocabulary, without_tokens
from serving.state import model_ref
from store import Store
from store.drift_queries import ReviewedOutcome, ServedPrediction
from store.review_queries import iso_week
from store.review_records import rate

logger = logging.getLogger(__name__)

#: The newest predictions a report reads at most (each is tokenised at report time).
MAX_CASES = 20_000


class NoReferenceError(LookupError):
    """The loaded model has no reference profile (trained before bundle format 3)."""


@lru_cache(maxsize=4)
def drift_config(path: str | None = None) -> DriftConfig:
    return load_drift_config(Path(path) if path else None)


def _figures(rows: Sequence[ServedPrediction]) -> list[CaseFigures]:
    return [case_figures(prepare(r.title, r.body), r.department, r.confidence, r.risk_level) for r in rows]


def drift_report(
    store: Store,
    model: LoadedModel,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    config: DriftConfig | None = None,
    limit: int = MAX_CASES,
) -> dict[str, Any]:
    """Each profile figure of the window against the reference (state, statistic, sentence), the same by ISO
    week, and reviewers' results (auto-routing precision and coverage, red recall) by week and department."""
    reference = model.bundle.reference
    if reference is None:
        raise NoReferenceError(
            "the loaded model has no reference profile (it was trained before drift reports existed): train and "
            "promote a model with this version (`triage train`), then reload"
        )
    config = config or drift_config()
    rows, truncated = store.served_predictions(since=since, until=until, limit=limit)
    if truncated:
        logger.info("drift report: window holds more than %d predictions; the newest %d are profiled", limit, limit)
    figures = _figures(rows)
    vocabulary = router_vocabulary(model.bundle.router)
    overall = compare(reference, figures, vocabulary=vocabulary, config=config)
    by_week: dict[str, list[CaseFigures]] = defaultdict(list)
    for row, figure in zip(rows, figures, strict=True):
        by_week[iso_week(row.made_at)].append(figure)
    weeks = []
    for week in sorted(by_week):
        compared = compare(reference, by_week[week], vocabulary=vocabulary, config=config)
        weeks.append({
            "week": week,
            "n_cases": compared["n_cases"],
            "enough_cases": compared["enough_cases"],
            "figures": {f["name"]: {"state": f["state"], "statistic": f["statistic"]} for f in compared["figures"]},
        })
    ref = model_ref(model)
    summary = without_tokens(reference)
    return {
        "since": since,
        "until": until,
        "model": {"name": ref.name, "version": ref.version},
        "reference": {"n_cases": summary["n_cases"], "trained_at": model.bundle.metadata.get("trained_at")},
        "thresholds_version": config.version,
        "min_cases": config.min_cases,
        "n_cases": overall["n_cases"],
        "truncated": truncated,
        "enough_cases": overall["enough_cases"],
        "flagged": overall["flagged"],
        "figures": overall["figures"],
        "weeks": weeks,
        "results": results_over_time(rows, store.reviewed_outcomes(since=since, until=until)),
    }


_cache_lock = threading.Lock()
_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}


def recent_drift_report(store: Store, model: LoadedModel, *, weeks: int, limit: int,
                        max_age: float = 300.0) -> dict[str, Any]:
    """The report of the last `weeks` weeks, computed at most every `max_age` seconds per store and model:
    the dashboard's (each case is tokenised again at report time, seconds for thousands of cases)."""
    key = (repr(store), model.uri, model.version, weeks, limit)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < max_age:
            return hit[1]
    report = drift_report(store, model, since=datetime.now(UTC) - timedelta(weeks=weeks), limit=limit)
    with _cache_lock:
        _cache.clear()  # one entry: the dashboard's window of the model serving now
        _cache[key] = (now, report)
    return report


@dataclass
class _Tally:
    predictions: int = 0
    auto_routed: int = 0
    reviewed_auto: int = 0
    correct_auto: int = 0
    reviewed_red: int = 0
    caught_red: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "predictions": self.predictions,
            "auto_routing_coverage": rate(self.auto_routed, self.predictions),
            "reviewed_auto_routed": self.reviewed_auto,
            "auto_routing_precision": rate(self.correct_auto, self.reviewed_auto),
            "reviewed_red": self.reviewed_red,
            "red_recall": rate(self.caught_red, self.reviewed_red),
        }


def results_over_time(
    served: Iterable[ServedPrediction], reviewed: Iterable[ReviewedOutcome]
) -> dict[str, list[dict[str, Any]]]:
    """Auto-routing coverage (predictions routed without review), its precision (reviewed auto-routed cases
    whose department the reviewer kept) and red recall (reviewer-red cases the model called red), by the
    week the prediction was made and by department (the model's; the reviewer's for red recall)."""
    weeks: dict[str, _Tally] = defaultdict(_Tally)
    departments: dict[str, _Tally] = defaultdict(_Tally)
    for row in served:
        for tally in (weeks[iso_week(row.made_at)], departments[row.department]):
            tally.predictions += 1
            tally.auto_routed += not row.needs_review
    for outcome in reviewed:
        week = weeks[iso_week(outcome.made_at)]
        if not outcome.needs_review:
            for tally in (week, departments[outcome.department]):
                tally.reviewed_auto += 1
                tally.correct_auto += outcome.decided_department == outcome.department
        if outcome.decided_level == "red":
            for tally in (week, departments[outcome.decided_department]):
                tally.reviewed_red += 1
                tally.caught_red += outcome.risk_level == "red"
    return {
        "by_week": [{"week": name, **tally.row()} for name, tally in sorted(weeks.items())],
        "by_department": [{"department": name, **tally.row()} for name, tally in
                          sorted(departments.items(), key=lambda item: (-item[1].predictions, item[0]))],
    }
