"""What a reviewer reads: the Chinese wording of the risk model's reasons.

Presentation only: the model decides which features and criteria are reasons (`models.risk.model`); this
module says them. Kept apart so wording can change without touching how a level is decided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from features import risk_cues
from models.risk.features import CATEGORY_PREFIX, DEPT_PREFIX, TEXT_CRITERION_PREFIX, TEXT_SCORE_PREFIX

#: Below this the text model's score reads "unlike ... cases" (`feature_text`): no reason for red or yellow.
SIMILAR_FROM = 0.2


RULE_FLOOR_TEXT = "提示词规则判为红色情形（如燃气泄漏、欠薪、聚集），模型把握不足：至少列为黄色，请人工确认"


_COUNT_TEXT: dict[str, tuple[str, str]] = {
    "cue_red_1": ("提到危及人身安全的情况（如燃气泄漏、坍塌、电梯困人）", "未提到危及人身安全的情况"),
    "cue_red_2": ("提到急性公共卫生危害（如食物中毒、饮用水污染、疫情）", "未提到急性公共卫生危害"),
    "cue_red_3": ("提到多人面临严重损失（如拖欠工资、烂尾楼、非法集资、强拆）", "未提到多人面临严重损失"),
    "cue_red_4": ("提到群体性冲突升级（聚集、堵路、集体上访）", "未提到群体性冲突"),
    "cue_yellow_1": ("提到对健康、财产或生计的持续损害（如污染噪音、停水停电、物业纠纷）", "未提到持续性损害"),
    "cue_yellow_2": ("涉及较多群众（整个小区、村组或数十户）", "未提到涉及较多群众"),
    "cue_yellow_3": ("提到问题多次反映仍未解决", "未提到多次反映未解决"),
    "cue_yellow_4": ("涉及弱势群体（老人、儿童、残疾人、孕妇、重病患者）", "未提到弱势群体"),
    "has_many_people": ("受影响人数达到10人（户）以上", "未提到10人（户）以上受影响"),
    "body_empty": ("只有标题，没有正文", "有正文描述"),
    "money_mentions": ("提到了涉及的金额", "未提到金额"),
}
_CATEGORY_TEXT: dict[str, str] = {
    "gas_leak": "燃气泄漏或燃气味",
    "gas_cylinder": "不合格或报废的燃气钢瓶",
    "explosion": "爆炸",
    "fire": "起火或火灾",
    "fire_hazard_people": "有人居住场所的消防隐患",
    "collapse": "房屋或设施坍塌风险",
    "falling_objects": "高空坠物或构件脱落",
    "live_wires": "裸露电线或漏电",
    "flood_landslide": "洪水、内涝或山体滑坡",
    "road_bridge": "危险的道路或桥梁缺陷",
    "elevator": "电梯故障或困人",
    "hazardous_goods": "居住区附近存放或生产危险品",
    "injury_or_death": "已造成人员伤亡",
    "violence": "暴力或暴力威胁",
    "self_harm": "有人表示要伤害自己",
    "food_poisoning": "食物中毒",
    "drinking_water": "饮用水污染",
    "outbreak": "疫情或传染病",
    "denied_treatment": "急症患者得不到救治",
    "food_drug_safety": "问题食品、药品或疫苗",
    "wage_arrears": "拖欠工资",
    "overdue_housing": "烂尾楼或长期逾期交房",
    "fundraising_fraud": "非法集资或投资诈骗",
    "absconding": "收了众人钱款的一方跑路失联",
    "prepaid_loss": "预付款、定金或储值卡无法退还",
    "forced_demolition": "强制拆迁",
    "school_incident": "学校或幼儿园安全事件",
    "gathering_blocking": "聚集、堵路等群体行动",
    "heading_to_government": "准备到政府部门集体上访",
    "escalation": "矛盾激化、可能发生冲突",
    "pollution_nuisance": "持续的污染、噪音或异味",
    "utilities_cut": "停水、停电或停暖",
    "property_dispute": "与物业的纠纷",
    "compensation_dispute": "拆迁补偿纠纷",
    "employment": "劳动用工问题",
    "pension_social_insurance": "养老或社保待遇问题",
    "enrolment": "入学纠纷",
    "safety_hazard": "安全隐患",
    "threat_to_life": "可能危及生命的情况",
    "health_harm": "健康受到损害",
    "many_people": "涉及大量群众",
    "repeated_unresolved": "多次反映仍未解决",
    "vulnerable_people": "涉及老人、儿童等弱势群体",
    "people_count": "明确的受影响人数（10人或10户以上）",
}
_LENGTH_TEXT: dict[str, tuple[str, str]] = {
    "text_len_log1p": ("留言篇幅较长", "留言篇幅较短"),
    "title_chars": ("标题较长", "标题较短"),
    "body_chars": ("正文较长", "正文较短"),
    "digit_count": ("包含较多数字（日期、金额、人数等）", "数字较少"),
    "number_count": ("提到较多具体数字", "具体数字较少"),
    "sentence_count": ("叙述较详细（句子较多）", "叙述简短"),
    "people_max_log1p": ("提到的受影响人数较多", "未提到较多受影响人数"),
}


def feature_text(name: str, value: float, reference: float | None = None) -> str:
    """A reviewer's wording of feature ``name`` at ``value`` (``reference``: the training median)."""
    if name.startswith(DEPT_PREFIX):
        dept = name[len(DEPT_PREFIX):]
        if value >= 0.5:
            return f"属于{dept}类问题（可能性{value:.0%}）"
        if value >= 0.2:
            return f"可能属于{dept}类问题（可能性{value:.0%}）"
        return f"不太像{dept}类问题（可能性{value:.0%}）"
    if name.startswith(TEXT_SCORE_PREFIX):
        colour = {"red": "红色", "yellow": "黄色", "green": "绿色"}.get(name[len(TEXT_SCORE_PREFIX):], name)
        if value >= 0.5:
            return f"文本整体与{colour}案例相似（可能性{value:.0%}）"
        if value >= 0.2:
            return f"文本与{colour}案例有些相似（可能性{value:.0%}）"
        return f"文本整体不像{colour}案例（可能性{value:.0%}）"
    if name.startswith(TEXT_CRITERION_PREFIX):
        criterion = name[len(TEXT_CRITERION_PREFIX):]
        label = risk_cues.CRITERION_NAMES.get(criterion, criterion)
        if value >= SIMILAR_FROM:
            return f"文本与「{label}」的已标注案例相似（可能性{value:.0%}）"
        return f"文本不像「{label}」的已标注案例（可能性{value:.0%}）"
    if name.startswith(CATEGORY_PREFIX):
        phrase = _CATEGORY_TEXT.get(name[len(CATEGORY_PREFIX):], name[len(CATEGORY_PREFIX):])
        return f"提到{phrase}" if value > 0 else f"未提到{phrase}"
    if name in _COUNT_TEXT:
        present, absent = _COUNT_TEXT[name]
        return present if value > 0 else absent
    if name == "rule_level":
        return {2: "关键词规则判为红色（需当天处置）", 1: "关键词规则判为黄色（需数日内处理）"}.get(
            round(value), "关键词规则未发现风险线索"
        )
    if name == "exclamation_count":
        return f"使用了{int(value)}个感叹号，语气急迫" if value > 0 else "没有使用感叹号"
    if name == "question_count":
        return f"包含{int(value)}个问句（咨询类留言常见）" if value > 0 else "没有问句"
    if name == "burst_cases":
        return f"近期有{int(value)}件相似案件" if value > 0 else "近期没有相似案件"
    if name == "burst_people":
        return f"近期多人反映同一问题（{int(value)}人）" if value > 1 else "近期没有其他人反映同一问题"
    if name == "burst_recent_cases":
        return f"最近7天有{int(value)}件相似案件" if value > 0 else "最近7天没有相似案件"
    if name == "burst_growth":
        return "相似案件数量正在快速增加" if value > 1 else "相似案件数量没有明显增加"
    if name == "burst_votes":
        return f"相似留言获得{int(value)}个点赞" if value > 0 else "相似留言没有获得点赞"
    if name in _LENGTH_TEXT:
        more, less = _LENGTH_TEXT[name]
        if name == "people_max_log1p" and value > 0:
            return f"提到约{round(math.expm1(value))}人（户）受影响"
        if name == "text_len_log1p":
            shown = f"（约{round(math.expm1(value))}字）"
        elif name in ("title_chars", "body_chars"):
            shown = f"（{int(value)}字）"
        else:
            shown = ""
        return (more if reference is None or value >= reference else less) + shown
    return name



def criterion_text(level: str, criterion: str, quoted: Sequence[str]) -> str:
    """The first reason of a red or yellow case: the rubric criterion it meets and the case's own phrases."""
    name = risk_cues.CRITERION_NAMES[criterion]
    colour = {"red": "红色", "yellow": "黄色"}[level]
    number = criterion.split("-", 1)[1]
    shown_phrases = "、".join(f"“{q}”" for q in quoted)
    return f"符合{colour}标准{number}「{name}」" + (f"：文中{shown_phrases}" if quoted else "")
