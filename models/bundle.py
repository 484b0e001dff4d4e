"""The one artefact serving loads: the fitted router, its thresholds and what describes them.

Training builds a `TriageBundle`, MLflow stores it (see `models.mlflow_model`), and serving, batch,
Dask, warm-up, training's evaluation and promotion all call `assess` (or `route` for the department
alone); nothing outside this class turns probabilities into decisions.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import joblib
import numpy as np
import sklearn
import zstandard
from sklearn.pipeline import Pipeline

from features import tokenizer
from features.prepared import prepare, prepared_cases
from models.fast_linear import CompiledCalibratedLinear
from models.risk import text_score
from models.taxonomy_guard import let_through, max_class_score

if TYPE_CHECKING:
    from models.risk import RiskInputs, RiskResult

logger = logging.getLogger(__name__)

#: The bundle as pickle protocol 5, zstd-compressed (level 3). Read with the C unpickler: joblib's load (the
#: oldest file name, still read) goes through Python's pure-Python unpickler, 3.4 s against 0.6 s for a model
#: trained on the TipDM messages, paid by every `triage predict` and every service start. zstd rather than
#: gzip (the name before, still read): the production-recipe bundle (117 MB pickled) is 68 MB instead of 75 and
#: decompresses in 0.16 s instead of 0.47; saving takes 0.5 s instead of 2.4.
BUNDLE_FILE = "bundle.pkl.zst"
GZIP_BUNDLE_FILE = "bundle.pkl.gz"
LEGACY_BUNDLE_FILE = "bundle.joblib"
#: The names a bundle folder may hold, newest first: `TriageBundle.load` reads the first present.
BUNDLE_FILES = (BUNDLE_FILE, GZIP_BUNDLE_FILE, LEGACY_BUNDLE_FILE)
_ZSTD_LEVEL = 3
#: The first bytes of a zstd frame and of a gzip member: how `TriageBundle.load` tells the two apart.
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
#: Layout version of a pickled bundle. 1: every bundle before the version was recorded (risk model and
#: taxonomy guard possibly absent; the risk model's text scorer pickled as ``models.risk_text``). 2: no
#: reference profile. 3: no ``routed_threshold`` in the taxonomy guard (it flags on its threshold alone). 4: now
#: (the guard spends its budget on cases the department thresholds let through, `models.taxonomy_guard`: code
#: before it would load such a guard and flag on its lower threshold alone, so it refuses this format).
#: `TriageBundle.__setstate__` brings an older layout up to this one, in one place.
BUNDLE_FORMAT = 4
#: Most cases `TriageBundle.pending` reads at once; larger batches go in parts of this size (bounded memory).
PENDING_BATCH = 1000
TOP_K = 3


class BundleFormatError(ValueError):
    """A pickled bundle this code cannot read; the message says which format and what to do."""


# Bundles of format 1 pickled the risk model's text scorer under its old module name: unpickling them
# finds it where it now lives.
sys.modules.setdefault("models.risk_text", text_score)


@dataclass(frozen=True)
class Route:
    label: str
    confidence: float
    top: list[tuple[str, float]]
    needs_review: bool
    #: Unlike every known department (`models.taxonomy_guard`): sent to review whatever the confidence.
    out_of_taxonomy: bool = False
    #: The probability of every department (`TriageBundle.classes` order): the risk model reads them.
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)


class BurstView(Protocol):
    """What an assessment reads of a case's burst at intake (`models.hotspots.Assignment` is one)."""

    @property
    def hot_issue_id(self) -> str | None: ...

    def features(self) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class ReplayedBurst:
    """A burst as a batch replay recorded it (`burst_*` columns and ``hot_issue_id`` of a scored frame)."""

    stats: Mapping[str, float]
    hot_issue_id: str | None = None

    def features(self) -> Mapping[str, float]:
        return self.stats


@dataclass(frozen=True)
class Assessment:
    """Everything the models say of one case: its department, its risk level with reasons, and its hot
    issue. `TriageBundle.assess` is the one place that makes it, for serving, batch, Dask, warm-up,
    training's evaluation and promotion alike."""

    route: Route
    #: None for bundles without a risk model.
    risk: RiskResult | None
    #: Where the hot-issue detector placed the case (None: scored without a detector).
    burst: BurstView | None = None

    @property
    def hot_issue_id(self) -> str | None:
        return None if self.burst is None else self.burst.hot_issue_id


@dataclass(frozen=True)
class PendingAssessments:
    """A batch routed and read by the risk model, waiting only for where the hot-issue detector places each
    case: the one step that must run in time order. `TriageBundle.pending` makes it (in any process: it
    pickles), `TriageBundle.finish` completes it; `assess` is the two in a row."""

    routes: list[Route]
    #: None for bundles without a risk model, or no cases.
    risk: RiskInputs | None

    def parts(self) -> list[PendingAssessments]:
        """Each case's own pending assessment, to finish one at a time as the detector places it: equal to
        `TriageBundle.pending` of that case alone, at a batch's cost instead of a case's each."""
        return [PendingAssessments([route], None if self.risk is None else self.risk.row(i))
                for i, route in enumerate(self.routes)]

    @classmethod
    def concat(cls, parts: Sequence[PendingAssessments]) -> PendingAssessments:
        """Consecutive batches as one, in order."""
        risks = [p.risk for p in parts if p.risk is not None]
        return cls([r for p in parts for r in p.routes], type(risks[0]).concat(risks) if risks else None)


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
    #: What the cases it was trained for look like (`models.profile.reference_from_training`): the drift
    #: report's reference. None in bundles trained before it existed (format < 3): no drift report.
    reference: dict[str, Any] | None = None
    #: `BUNDLE_FORMAT` of the code that built it (bundles say which layout they are, like hot-issue snapshots).
    format: int = BUNDLE_FORMAT

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
        version = state.get("format", 1)
        if not isinstance(version, int) or version > BUNDLE_FORMAT:
            raise BundleFormatError(
                f"this model is in bundle format {version!r}, newer than the {BUNDLE_FORMAT} this version of "
                "grievance-triage reads; upgrade the service, or serve a model trained by this version"
            )
        if version < 2:
            state.setdefault("risk", None)
            state.setdefault("taxonomy_guard", None)
        if version < 3:
            state.setdefault("reference", None)
        # version < 4: its taxonomy guard has no routed_threshold and loads as one that flags on its threshold
        # alone, as it did (`TaxonomyGuard.__setstate__`).
        state["format"] = BUNDLE_FORMAT
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
        guard = self.taxonomy_guard
        compiled = self._compiled()
        with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
            if compiled is None and guard is None:
                return self.router.predict_proba(cases), None
            features = self._features(cases)
            if compiled is None:
                proba = self.router[-1].predict_proba(features)
                raw = max_class_score(self.router[-1], features)
            else:
                proba, raw = compiled.predict_proba_and_margin(features)
        if guard is None or raw is None:
            return proba, None
        return proba, guard.flags(raw, let_through(proba, self._limits()))

    def _features(self, cases: Any) -> Any:
        """The router's steps before the classifier, applied in turn: what ``router[:-1].transform`` gives,
        without building a sliced Pipeline and checking it is fitted on every call (about 0.1 ms of a
        single case's 0.7 ms routing)."""
        features = cases
        for _, step in self.router.steps[:-1]:
            if step is not None and step != "passthrough":
                features = step.transform(features)
        return features

    def assess(
        self,
        cases: Any,
        *,
        routes: Sequence[Route] | None = None,
        bursts: Sequence[BurstView | None] | None = None,
        reasons: bool = True,
    ) -> list[Assessment]:
        """Route, risk (bands, then the cue rules' safety floor) with reasons, and hot issue, per case.

        ``cases``: `PreparedCase`s (each normalised and tokenised once, shared by every model), (title, body)
        pairs or a DataFrame with title / body. ``routes``: the cases' routes when already made (serving
        routes a case before the hot-issue detector places it). ``bursts``: where the detector placed each
        case (its statistics are risk features); None: no detector. ``reasons`` False skips the risk
        reasons (batch), which changes no level.
        """
        return self.finish(self.pending(cases, routes=routes, reasons=reasons), bursts=bursts, reasons=reasons)

    def pending(
        self, cases: Any, *, routes: Sequence[Route] | None = None, reasons: bool = True, contributions: bool = False
    ) -> PendingAssessments:
        """Everything `assess` does that does not depend on other cases: routing, and the risk model's reading
        of the cases. ``reasons`` False keeps only what levels need (light to send to another process).
        ``contributions`` (with reasons): the reasons' model contributions too, so that `finish`, which may run
        in the hot-issue detector's transaction, only updates those of the cases the detector placed."""
        prepared = prepared_cases(cases)
        if routes is not None and len(routes) != len(prepared):
            raise ValueError("assess needs one route per case")
        if len(prepared) > PENDING_BATCH:
            # Each case is read alone (rows are the same in any batch), and a large batch's sparse matrices
            # (character n-grams of every text at once) took a Dask worker to 2 GB for a 20,000-case part.
            return PendingAssessments.concat([
                self.pending(prepared[i : i + PENDING_BATCH], reasons=reasons, contributions=contributions,
                             routes=None if routes is None else routes[i : i + PENDING_BATCH])
                for i in range(0, len(prepared), PENDING_BATCH)
            ])
        if routes is None:
            routes = self.route(prepared)
        risk = None
        if self.risk is not None and prepared:
            proba = np.vstack([r.scores for r in routes])
            if reasons:
                risk = self.risk.inputs(prepared, proba, self.classes, contributions=contributions)
            else:
                risk = self.risk.inputs(prepared, proba, self.classes).for_levels()
        return PendingAssessments(list(routes), risk)

    def finish(
        self, pending: PendingAssessments, *, bursts: Sequence[BurstView | None] | None = None, reasons: bool = True
    ) -> list[Assessment]:
        """The assessments of `pending` cases, now that ``bursts`` says where the detector placed each (its
        statistics are risk features); None: no detector."""
        routes = pending.routes
        if bursts is not None and len(bursts) != len(routes):
            raise ValueError("assess needs one burst (or None) per case")
        risks: list[RiskResult | None] = [None] * len(routes)
        if self.risk is not None and pending.risk is not None:
            stats = None if bursts is None else [None if b is None else b.features() for b in bursts]
            risks = list(self.risk.predict_inputs(pending.risk, bursts=stats, reasons=reasons))
        placed = bursts if bursts is not None else [None] * len(routes)
        return [Assessment(route, risk, burst) for route, risk, burst in zip(routes, risks, placed, strict=True)]

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
                    scores=row,
                )
            )
        return routes

    def route(self, cases: Any) -> list[Route]:
        """The department of each case (`PreparedCase`s, (title, body) pairs or a DataFrame)."""
        prepared = prepared_cases(cases)
        if not prepared:
            return []
        return self.routes_from_proba(*self.score(prepared))

    def route_one(self, title: str | None, body: str | None) -> Route:
        return self.route([prepare(title, body)])[0]

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / BUNDLE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        data = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(pickle.dumps(self, protocol=5))
        partial.write_bytes(data)
        partial.replace(path)  # a reader never sees half a file
        return path

    @classmethod
    def load(cls, path: str | Path) -> TriageBundle:
        """The bundle in ``path``: a bundle file, or a folder holding one (`BUNDLE_FILES`)."""
        path = Path(path)
        # The segmenter the model records is known once it is unpickled; the usual one is built meanwhile.
        tokenizer.build_early()
        if path.is_dir():
            path = bundle_file(path) or path / BUNDLE_FILE
        if path.name.endswith(".joblib"):
            bundle = joblib.load(path)
        else:
            bundle = pickle.loads(_decompressed(path))
        if not isinstance(bundle, cls):
            raise TypeError(f"{path} holds a {type(bundle).__name__}, not a TriageBundle")
        return bundle


def bundle_file(directory: Path) -> Path | None:
    """The bundle file a model folder holds (the newest name present), or None."""
    return next((directory / name for name in BUNDLE_FILES if (directory / name).is_file()), None)


def _decompressed(path: Path) -> bytes:
    """The pickle in a bundle file, zstd- or (before zstd) gzip-compressed, told apart by their magic bytes."""
    data = path.read_bytes()
    if data.startswith(_ZSTD_MAGIC):
        return zstandard.ZstdDecompressor().decompress(data)
    if data.startswith(_GZIP_MAGIC):
        return gzip.decompress(data)
    raise BundleFormatError(f"{path} is not a saved model bundle (neither zstd- nor gzip-compressed)")
