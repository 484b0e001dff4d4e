"""Training configuration: one YAML file that fully determines a run (with the data)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.config_file import ConfigError, load_settings_file
from models.risk import RiskParams
from models.router import ClassifierParams, FeatureParams

#: The default training config, shipped with the package (package data).
DEFAULT_CONFIG = Path(__file__).resolve().parent / "defaults" / "router.yaml"

__all__ = ["DEFAULT_CONFIG", "ConfigError", "RegistryParams", "TrainConfig", "load_config"]


#: Sections that are None unless their option is chosen; left out of the MLflow params when None.
OPTIONAL_SECTIONS = frozenset({"classifier.hashed"})


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


def load_config(path: str | Path | None = None) -> TrainConfig:
    return load_settings_file(TrainConfig, Path(path) if path else DEFAULT_CONFIG)
