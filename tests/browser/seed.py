"""Fictional cases for the reviewer-page tests, and a way to store them with a risk level.

The demo bundle the tests serve has no risk model, so red and yellow cases are stored through the
`Store` directly, with cue reasons computed by the real lexicon (`features.risk_cues.match_cues` on
`case_text`), exactly as the risk model stores them. Everything here is made up for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from features.risk_cues import CRITERION_NAMES, match_cues
from features.text import case_text
from store import CaseInput, PredictionInput, PredictionRecord, Store

TOP = [
    {"label": "城乡建设", "probability": 0.62},
    {"label": "环境保护", "probability": 0.30},
    {"label": "交通运输", "probability": 0.05},
]


@dataclass(frozen=True)
class SeedCase:
    case_id: str
    title: str
    body: str
    level: str
    department: str = "城乡建设"


RED_GAS = SeedCase(
    "WEB-RED-1",
    "小区地下室燃气味很重",
    "青林区兰亭苑小区3栋地下室燃气味很重已经两天，物业说不归他们管，随时可能出事，请尽快派人处理。",
    "red",
)
RED_WAGES = SeedCase(
    "WEB-RED-2",
    "公司拖欠60多名工人半年工资",
    "我们在高新区宏达建筑公司工地干活，老板拖欠60多名工人半年工资，明天大家准备去市政府门口讨说法。",
    "red",
    "劳动和社会保障",
)
YELLOW_NOISE = SeedCase(
    "WEB-YELLOW-1",
    "烧烤店凌晨噪音扰民",
    "楼下烧烤店每天凌晨两点还在营业，噪音和油烟让整栋楼的老人孩子无法休息，投诉多次无果。",
    "yellow",
    "环境保护",
)
GREEN_QUESTION = SeedCase("WEB-GREEN-1", "请问新生儿落户需要准备哪些材料？", "", "green", "城乡建设")
SEEDS = (RED_GAS, RED_WAGES, YELLOW_NOISE, GREEN_QUESTION)


def cue_reasons(title: str, body: str) -> list[dict[str, object]]:
    """The cue reasons the risk model would store for this text (offsets into case_text)."""
    return [
        {"kind": "cue", "text": m.phrase, "criterion": m.criterion, "category": m.category,
         "start": m.start, "end": m.end}
        for m in match_cues(case_text(title, body))
    ]


def criterion_reasons(level: str, cues: list[dict[str, object]]) -> list[dict[str, object]]:
    """The criterion reason a risk model puts first for a red or yellow case, from its cues at that level."""
    at_level = [c for c in cues if str(c["criterion"]).startswith(f"{level}-")]
    if level == "green" or not at_level:
        return []
    criterion = str(at_level[0]["criterion"])
    colour = {"red": "红色", "yellow": "黄色"}[level]
    return [{"kind": "criterion", "criterion": criterion,
             "text": f"符合{colour}标准{criterion[-1]}「{CRITERION_NAMES[criterion]}」：文中“{at_level[0]['text']}”"}]


def store_case(
    store: Store, seed: SeedCase, *, received_at: datetime | None = None, hot_issue_id: str | None = None
) -> PredictionRecord:
    """Store `seed` with its level, a model reason and its cue reasons, as a risk model would."""
    top = [dict(t) for t in TOP]
    if seed.department != top[0]["label"]:
        top = [{"label": seed.department, "probability": 0.62}, *[t for t in top if t["label"] != seed.department][:2]]
    probabilities = {"red": 0.1, "yellow": 0.1, "green": 0.1, seed.level: 0.8}
    cues = cue_reasons(seed.title, seed.body)
    reasons = {
        "risk": [
            *criterion_reasons(seed.level, cues),
            *cues,
            {"kind": "model", "text": "文本整体与红色案例相似（可能性80%）", "feature": "text_p:red", "value": 0.8,
             "weight": 2.5},
        ],
        "hot_issue": None if hot_issue_id is None else {"id": hot_issue_id, "level": None, "cases": 2,
                                                        "reporters": 2},
    }
    return store.record_case_and_prediction(
        CaseInput(seed.case_id, seed.title, seed.body, created_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
                  reporter_id=None, received_at=received_at or datetime.now(UTC)),
        PredictionInput(
            model_name="grievance-triage", model_version="test", department=seed.department,
            department_confidence=0.62, needs_review=False, top=top, risk_level=seed.level,
            risk_probabilities=probabilities, reasons=reasons, hot_issue_id=hot_issue_id,
        ),
    )


def store_seeds(store: Store) -> dict[str, PredictionRecord]:
    """Every seed case, received a minute apart in list order (so the queue order is known)."""
    start = datetime.now(UTC) - timedelta(hours=1)
    return {
        seed.case_id: store_case(store, seed, received_at=start + timedelta(minutes=i))
        for i, seed in enumerate(SEEDS)
    }
