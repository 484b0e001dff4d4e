"""The one artefact serving loads: the fitted router, its thresholds and what describes them.

Training builds a `TriageBundle`, MLflow stores it (see `models.mlflow_model`), and serving and batch
prediction call `route` / `route_one`; nothing outside this class turns probabilities into decisions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.pipeline import Pipeline

from features import tokenizer
from models.fast_linear import CompiledCalibratedLinear
from models.taxonomy_guard import max_class_score

logger = logging.getLogger(__name__)

BUNDLE_FILE = "bundle.joblib"
TOP_K = 3


@dataclass(frozen=True)
class Route:
    label: str
    confidence: float
    top: list[tuple[str, float]]
    needs_review: bool
    #: Unlike every known department (`models.taxonomy_guard`): sent to review whatever the confidence.
    out_of_taxonomy: bool = False


@dataclass
class TriageBundle:
    router: Pipeline
    thresholds: dict[str, float | None]
    target_precision: float
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The risk model (`models.risk.RiskModel`), fed with the router's probabilities; None in bundles
    #: trained before risk levels existed.
    risk: Any = None
    #: Flags cases outside the known departments (`models.taxonomy_guard.TaxonomyGuard`); None in bundles
    #: trained before it existed, and for routers without raw class scores.
    taxonomy_guard: Any = None

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.router.classes_]

    def _limits(self) -> np.ndarray:
        return np.array(
            [np.inf if self.thresholds.get(c) is None else self.thresholds[c] for c in self.classes]
        )

    def _compiled(self) -> CompiledCalibratedLinear | None:
        """The numpy scorer for the classifier step, built once per loaded bundle (not pickled)."""
        if "_compiled_cache" not in self.__dict__:
            try:
                self.__dict__["_compiled_cache"] = CompiledCalibratedLinear(self.router[-1])
            except (ValueError, AttributeError) as exc:
                logger.info("compiled scoring unavailable (%s); using sklearn's predict_proba", exc)
                self.__dict__["_compiled_cache"] = None
        return self.__dict__["_compiled_cache"]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_compiled_cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # However it is loaded (joblib, MLflow, a Dask worker), a model is only ever used with the word
        # segmenter it was trained with (`features.tokenizer`): this process switches to it, or refuses.
        tokenizer.ensure((state.get("metadata") or {}).get("tokenizer"))
        self.__dict__.update(state)

    def predict_proba(self, cases: Any) -> np.ndarray:
        """Probabilities over `classes` for a DataFrame with title/body or (title, body) pairs.

        Same numbers as ``router.predict_proba``; sklearn's per-call input validation is skipped because
        the vectorizer builds the matrix itself and it is always finite.
        """
        return self.score(cases)[0]

    def score(self, cases: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """The probabilities, and which cases lie outside the known departments (None without a guard),
        from one pass of the vectorizer."""
        guard = getattr(self, "taxonomy_guard", None)
        compiled = self._compiled()
        with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
            if compiled is None and guard is None:
                return self.router.predict_proba(cases), None
            features = self.router[:-1].transform(cases)
            if compiled is None:
                proba = self.router[-1].predict_proba(features)
                raw = max_class_score(self.router[-1], features)
            else:
                proba, raw = compiled.predict_proba_and_margin(features)
        return proba, None if guard is None or raw is None else guard.flags(raw)

    def routes_from_proba(self, proba: np.ndarray, out_of_taxonomy: np.ndarray | None = None) -> list[Route]:
        classes = self.classes
        limits = self._limits()
        k = min(TOP_K, len(classes))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        outside = np.zeros(len(proba), dtype=bool) if out_of_taxonomy is None else out_of_taxonomy
        routes = []
        for row, idx, away in zip(proba, order, outside, strict=True):
            best = int(idx[0])
            routes.append(
                Route(
                    label=classes[best],
                    confidence=float(row[best]),
                    top=[(classes[i], float(row[i])) for i in idx],
                    needs_review=bool(row[best] < limits[best] or away),
                    out_of_taxonomy=bool(away),
                )
            )
        return routes

    def route(self, cases: Any) -> list[Route]:
        if isinstance(cases, pd.DataFrame) and cases.empty:
            return []
        return self.routes_from_proba(*self.score(cases))

    def route_one(self, title: str | None, body: str | None) -> Route:
        return self.route([(title or "", body or "")])[0]

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / BUNDLE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path, compress=3)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TriageBundle:
        path = Path(path)
        if path.is_dir():
            path = path / BUNDLE_FILE
        bundle = joblib.load(path)
        if not isinstance(bundle, cls):
            raise TypeError(f"{path} holds a {type(bundle).__name__}, not a TriageBundle")
        return bundle
