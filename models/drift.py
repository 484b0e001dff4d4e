"""Served traffic against the model's reference profile: a state per figure and a sentence per flagged one.

A window's cases are profiled as the reference was (`models.profile`) and each figure compared:
population stability index (PSI) for the distributions (department mix, risk mix, confidence, text
length, place share), the rise in the share of tokens never seen in training, and frequent terms outside
the router's vocabulary. Thresholds come from a YAML file (`models/defaults/drift.yaml`), so they are
versioned config, not literals here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.config_file import DEFAULTS_DIR, load_settings_file
from models.profile import CaseFigures, build_profile, unseen_terms

DEFAULT_DRIFT_CONFIG = DEFAULTS_DIR / "drift.yaml"
State = Literal["ok", "watch", "drift"]
#: Figures in the order a report lists them.
FIGURES = ("department_mix", "risk_mix", "confidence", "text_length", "vocabulary", "new_terms", "place_share")
LABELS_ZH = {
    "department_mix": "部门构成",
    "risk_mix": "风险等级构成",
    "confidence": "模型置信度",
    "text_length": "文本长度",
    "vocabulary": "训练中未见词占比",
    "new_terms": "词表外高频新词",
    "place_share": "含地点案件占比",
}
LEVEL_ZH = {"red": "红色", "yellow": "黄色", "green": "绿色", "none": "未评级"}
#: Half a case added to every bin of both sides before PSI: an empty bin gives a finite, small term.
SMOOTHING = 0.5


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid")
    watch: float = Field(gt=0)
    drift: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.drift < self.watch:
            raise ValueError("drift must be at least watch")
        return self

    def state(self, value: float | None) -> State:
        if value is None or math.isnan(value):
            return "ok"
        return "drift" if value >= self.drift else "watch" if value >= self.watch else "ok"


class NewTermRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_cases: int = Field(5, ge=1)
    min_case_share: float = Field(0.01, gt=0, le=1)
    drift_case_share: float = Field(0.03, gt=0, le=1)
    limit: int = Field(20, ge=1, le=200)


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    min_cases: int = Field(100, ge=1)
    psi: Band = Band(watch=0.1, drift=0.25)
    unseen_share: Band = Band(watch=0.01, drift=0.03)
    new_terms: NewTermRule = NewTermRule()
    moved_departments: int = Field(5, ge=1, le=50)


def load_drift_config(path: str | Path | None = None) -> DriftConfig:
    return load_settings_file(DriftConfig, Path(path) if path else DEFAULT_DRIFT_CONFIG)


def psi(reference: Sequence[float], current: Sequence[float], n_reference: int, n_current: int) -> float:
    """Population stability index of two share vectors over the same bins, each smoothed by half a case."""
    total = 0.0
    k = len(reference)
    for p, q in zip(reference, current, strict=True):
        p_s = (p * n_reference + SMOOTHING) / (n_reference + SMOOTHING * k)
        q_s = (q * n_current + SMOOTHING) / (n_current + SMOOTHING * k)
        total += (q_s - p_s) * math.log(q_s / p_s)
    return total


def _aligned(
    reference: Mapping[str, float], current: Mapping[str, float]
) -> tuple[list[str], list[float], list[float]]:
    keys = sorted(set(reference) | set(current))
    return keys, [reference.get(k, 0.0) for k in keys], [current.get(k, 0.0) for k in keys]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _figure(name: str, state: State, statistic: float | None, detail: dict[str, Any], sentence: str) -> dict[str, Any]:
    return {"name": name, "label": LABELS_ZH[name], "state": state,
            "statistic": None if statistic is None else round(statistic, 4), "detail": detail,
            "sentence": sentence if state != "ok" else None}


def _mix_figure(name: str, ref: dict[str, Any], cur: dict[str, Any], config: DriftConfig, enough: bool,
                words: Mapping[str, str] | None = None) -> dict[str, Any]:
    keys, p, q = _aligned(ref[name], cur[name])
    value = psi(p, q, ref["n_cases"], cur["n_cases"]) if cur["n_cases"] else None
    moves = sorted(({"key": k, "reference": round(a, 4), "window": round(b, 4), "change": round(b - a, 4)}
                    for k, a, b in zip(keys, p, q, strict=True)), key=lambda m: (-abs(m["change"]), m["key"]))
    moves = moves[: config.moved_departments]
    state = config.psi.state(value) if enough else "ok"
    top = moves[0] if moves else None
    sentence = ""
    if top is not None:
        what = (words or {}).get(top["key"], top["key"])
        verb = "升至" if top["change"] > 0 else "降至"
        sentence = (f"{LABELS_ZH[name]}与训练时相比变化{'明显' if state == 'drift' else '较大'}（PSI {value:.2f}）："
                    f"{what}占比由{_pct(top['reference'])}{verb}{_pct(top['window'])}。")
    return _figure(name, state, value, {"moved": moves}, sentence)


def _histogram_figure(name: str, ref: dict[str, Any], cur: dict[str, Any], config: DriftConfig, enough: bool,
                      low_bins: int, low_words: str) -> dict[str, Any]:
    p, q = ref[name]["shares"], cur[name]["shares"]
    value = psi(p, q, ref["n_cases"], cur["n_cases"]) if cur["n_cases"] else None
    state = config.psi.state(value) if enough else "ok"
    low_ref, low_cur = sum(p[:low_bins]), sum(q[:low_bins])
    sentence = (f"{LABELS_ZH[name]}分布与训练时相比{'明显' if state == 'drift' else ''}变化（PSI {value or 0:.2f}）："
                f"{low_words}的案件占比由{_pct(low_ref)}变为{_pct(low_cur)}。")
    return _figure(name, state, value, {"edges": cur[name]["edges"], "reference": p, "window": q}, sentence)


def compare(
    reference: Mapping[str, Any],
    cases: Sequence[CaseFigures],
    *,
    vocabulary: Collection[str] | None,
    config: DriftConfig,
) -> dict[str, Any]:
    """Every figure of `cases` against `reference`: state, statistic, detail and (when flagged) a sentence."""
    training_tokens = frozenset(reference.get("training_tokens") or ())
    current = build_profile(cases, vocabulary=vocabulary, training_tokens=training_tokens or None)
    ref = dict(reference)
    n = current["n_cases"]
    enough = n >= config.min_cases
    figures = [
        _mix_figure("department_mix", ref, current, config, enough),
        _mix_figure("risk_mix", ref, current, config, enough, LEVEL_ZH),
        _histogram_figure("confidence", ref, current, config, enough, 5, "置信度低于0.5"),
        _histogram_figure("text_length", ref, current, config, enough, 2, "不足60字"),
        _vocabulary_figure(ref, current, config, enough),
        _new_terms_figure(cases, vocabulary if vocabulary is not None else training_tokens, config, enough),
        _place_figure(ref, current, config, enough),
    ]
    by_department = _by_department(ref, current)
    for figure in figures:
        if figure["name"] in ("confidence", "place_share"):
            key = "mean_confidence" if figure["name"] == "confidence" else "place_share"
            figure["detail"]["by_department"] = [
                {"department": d["department"], "n_cases": d["n_cases"], "reference": d[f"reference_{key}"],
                 "window": d[f"window_{key}"]} for d in by_department
            ]
    return {"n_cases": n, "enough_cases": enough, "figures": figures,
            "flagged": [f["name"] for f in figures if f["state"] != "ok"]}


def _by_department(ref: Mapping[str, Any], cur: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Mean confidence and place share per department, window beside reference (departments of the window,
    most cases first): where a change overall comes from."""
    reference = ref.get("by_department") or {}
    rows = []
    for department, figures in sorted(cur["by_department"].items(), key=lambda item: (-item[1]["n_cases"], item[0])):
        before = reference.get(department) or {}
        rows.append({
            "department": department,
            "n_cases": figures["n_cases"],
            "reference_mean_confidence": _round(before.get("mean_confidence")),
            "window_mean_confidence": _round(figures["mean_confidence"]),
            "reference_place_share": _round(before.get("place_share")),
            "window_place_share": _round(figures["place_share"]),
        })
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _vocabulary_figure(ref: dict[str, Any], cur: dict[str, Any], config: DriftConfig, enough: bool) -> dict[str, Any]:
    r, c = ref["vocabulary"], cur["vocabulary"]
    before, after = r.get("unseen_share"), c.get("unseen_share")
    rise = None if before is None or after is None else after - before
    state = config.unseen_share.state(rise) if enough else "ok"
    sentence = (f"训练中未出现过的词占比由{_pct(r.get('unseen_share'))}升至{_pct(c.get('unseen_share'))}，"
                f"模型词表覆盖率由{_pct(r.get('coverage'))}变为{_pct(c.get('coverage'))}：来件出现了模型没学过的说法。")
    detail = {"reference_unseen_share": r.get("unseen_share"), "window_unseen_share": c.get("unseen_share"),
              "reference_coverage": r.get("coverage"), "window_coverage": c.get("coverage")}
    return _figure("vocabulary", state, rise, detail, sentence)


def _new_terms_figure(cases: Sequence[CaseFigures], known: Collection[str], config: DriftConfig,
                      enough: bool) -> dict[str, Any]:
    rule = config.new_terms
    floor = max(rule.min_cases, math.ceil(rule.min_case_share * len(cases)))
    terms = unseen_terms(cases, known, min_cases=floor, limit=rule.limit) if known else []
    widest = terms[0]["cases"] / len(cases) if terms else 0.0
    state: State = "ok"
    if enough and terms:
        state = "drift" if widest >= rule.drift_case_share else "watch"
    shown = "、".join(f"“{t['term']}”（{t['cases']}件）" for t in terms[:5])
    sentence = f"出现{len(terms)}个模型词表外的高频新词，如{shown}：可能是新的问题类型。"
    return _figure("new_terms", state, widest if terms else 0.0, {"terms": terms, "min_cases": floor}, sentence)


def _place_figure(ref: dict[str, Any], cur: dict[str, Any], config: DriftConfig, enough: bool) -> dict[str, Any]:
    a, b = ref.get("place_share"), cur.get("place_share")
    value = None if a is None or b is None else psi([a, 1 - a], [b, 1 - b], ref["n_cases"], cur["n_cases"])
    state = config.psi.state(value) if enough else "ok"
    sentence = f"含具体地点的案件占比由{_pct(a)}变为{_pct(b)}（PSI {value or 0:.2f}）。"
    return _figure("place_share", state, value, {"reference": a, "window": b}, sentence)
