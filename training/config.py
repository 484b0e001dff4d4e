"""Training configuration: one YAML file that fully determines a run (with the data)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.hotspots import HotspotConfig
from models.risk import RiskParams
from models.router import ClassifierParams, FeatureParams

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "router.yaml"


#: Sections that are None unless their option is chosen; left out of the MLflow params when None.
OPTIONAL_SECTIONS = frozenset({"classifier.hashed"})


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the field."""


class RegistryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = "grievance-triage"
    experiment_name: str = "grievance-router"
    #: Labelled cases every candidate and the champion are scored on (`training.comparison`); None: a new
    #: version is the challenger unless there is no champion yet (promote it with `triage promote`).
    comparison_set: str | None = None
    #: Fewest comparison cases held out from both models' training for the gate to decide.
    comparison_min_cases: int = Field(30, ge=1)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The word segmenter (`features.tokenizer`), recorded in the model and used wherever it is served.
    tokenizer: Literal["jieba", "rjieba"] = "rjieba"
    #: Share of in-taxonomy cases (out of fold) the taxonomy guard sends to review as unlike every known
    #: department (`models.taxonomy_guard`); 0 turns the guard off.
    out_of_taxonomy_flag_rate: float = Field(0.05, ge=0.0, le=0.5)

    seed: int = 42
    test_size: float = Field(0.2, gt=0, lt=0.5)
    threshold_folds: int = Field(5, ge=2, le=10)
    target_precision: float = Field(0.98, gt=0.5, le=1.0)
    min_threshold: float = Field(0.5, ge=0, le=1)
    min_threshold_support: int = Field(5, ge=1)
    misrouted_examples: int = Field(50, ge=0)
    features: FeatureParams = FeatureParams()
    classifier: ClassifierParams = ClassifierParams()
    risk: RiskParams = RiskParams()
    registry: RegistryParams = RegistryParams()

    def flat_params(self) -> dict[str, object]:
        """The config as flat `section.key` params for MLflow."""
        flat: dict[str, object] = {}

        def walk(prefix: str, value: object) -> None:
            if value is None and prefix in OPTIONAL_SECTIONS:
                return  # an unused section (e.g. classifier.hashed of the default router) is not a param
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                flat[prefix] = value

        walk("", self.model_dump(mode="json"))
        return flat


DEFAULT_HOTSPOT_CONFIG = DEFAULT_CONFIG.parent / "hotspots.yaml"


def load_config(path: str | Path | None = None) -> TrainConfig:
    return _load_model(TrainConfig, Path(path) if path else DEFAULT_CONFIG)


def load_hotspot_config(path: str | Path | None = None) -> HotspotConfig:
    """The detector's settings: the given YAML, else experiments/hotspots.yaml, else built-in defaults."""
    if path is None and not DEFAULT_HOTSPOT_CONFIG.exists():
        return HotspotConfig()
    return _load_model(HotspotConfig, Path(path) if path else DEFAULT_HOTSPOT_CONFIG)


M = TypeVar("M", bound=BaseModel)


def _load_model(model: type[M], path: Path) -> M:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
