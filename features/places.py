"""Place names in grievance texts, found by pattern rather than by a gazetteer of one city.

`extract_places(text)` returns the places a text names, most specific first: residential communities,
companies and shops, schools, hospitals, markets and platforms, venues (scenic spots, parks, stations),
roads, lines (bus routes, metro lines, power lines) and, last, districts (区 / 县 / 镇 / 市 / 省). It
works on made-up names such as 兰亭苑小区 or 学府路小学 and on the anonymised names of the TipDM exports
(A市, A3区, K9县), because it only looks at the suffix of a name and at what stands to its left.

How a name is found: every occurrence of a suffix (小区, 花园, 苑, 路, 公司, 小学, 医院, 市场, …) is a
candidate; the name is the run of letters, digits and CJK characters to its left, cut after the last
district name (so "A市A3区郝家坪小学" gives the district A3区 and the school 郝家坪小学) and after the last
boundary word (的, 在, 我们, 关于, 附近, 这个, …: "我们小区" and "附近的小区" are no names). A name needs
at least two characters before its suffix, and a few generic names (物业公司, 老旧小区, 农贸市场, …) are
dropped.

Limits (by design, pattern matching cannot know every name):
- A name without a known suffix is not found (58车贷, 翠湖商业中心, 七中); the hot-issue detector leans on
  text similarity for those.
- The left edge is a heuristic: "请求帮助讨要金汇服装公司" yields "帮助讨要金汇服装公司". Compare names
  with `place_key` and `same_place`, which strip generic suffixes and accept one key containing the
  other, rather than by equality.
- One-character suffixes (苑, 府, 城, 湾, 园, 村, 街, 店, 站) are ambiguous; common false readings
  (政府, 县城, 台湾, 公园 as a community, 商店, 网站, …) are excluded, rarer ones are not.
- Generic power lines ("110kV高压线", "高压线") are kind 'line' but weak (see `is_specific`): two such
  mentions at different places have the same name.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import accumulate
from typing import NamedTuple

__all__ = [
    "KINDS",
    "Place",
    "extract_places",
    "is_specific",
    "place_key",
    "primary_place",
    "same_place",
]


class Place(NamedTuple):
    """A place name found in a text; `start`/`end` are character offsets (text[start:end] == name,
    except for power lines, whose name is normalised, e.g. "11万伏高压线" -> "110kV高压线")."""

    name: str
    kind: str
    start: int
    end: int


#: Kinds in order of specificity (most specific first). Ties keep text order.
KINDS = ("community", "company", "school", "hospital", "market", "venue", "road", "line", "district")
_RANK = {kind: i for i, kind in enumerate(KINDS)}
# Named entities (a community, a company, ...) are equally specific: they share rank 0.
for _kind in ("company", "school", "hospital", "market", "venue"):
    _RANK[_kind] = 0

_CJK = "\u4e00-\u9fff"
_NAME_CHARS = f"{_CJK}A-Za-z0-9·"
_NAME_TAIL = re.compile(f"[{_NAME_CHARS}]+$")
_TRAILING_DIGITS = re.compile(r"[0-9]$")
#: Furthest a name is read to the left of its suffix: beyond the longest name kept (_MAX_PREFIX) and the
#: boundary words trimmed from its left.
_NAME_WINDOW = 64

# -- districts --------------------------------------------------------------------------------------
# Anonymised (A市, A3区, K9县) or written out (青林区, 北山县, 云川市, 西地省, 月亮岛街道, 黄花镇).
_DISTRICT = re.compile(
    rf"(?:(?<![A-Za-z0-9])[A-Z][0-9]{{0,2}}(?:市|区|县|镇|乡|省)(?!场|委|民|政府)"
    rf"|[{_CJK}]{{2,4}}?(?:街道|新区|开发区|经开区|高新区|自治县|区|县|镇|乡|市|省)(?!场|委|民|政府|级))"
)
# The last character of every suffix above, and how far after a name's start it can be (4 + 开发区).
_DISTRICT_HINT = re.compile("[市区县镇乡省道]")
_DISTRICT_REACH = 6
# Last character of a written-out district's core that makes it no district (小区, 景区, 超市, 老城区…).
_DISTRICT_BAD_END = {
    "区": set("小社景城片辖郊山校院园营灾禁军厂库街"),
    "市": set("超城门都股夜菜集黑早闹上"),
}
_DISTRICT_BAD_END_ANY = set("本该全各此某每我老新")
_DISTRICT_GENERIC = {"城区", "市区", "郊区", "山区", "景区", "新区", "开发区", "街道"}

# -- named places: suffix -> kind -------------------------------------------------------------------
# Longer suffixes first, so "幼儿园" wins over "园" and "小区" over "区".
_SUFFIXES: list[tuple[str, str]] = [
    # schools
    ("幼儿园", "school"), ("实验学校", "school"), ("学校", "school"), ("小学", "school"), ("中学", "school"),
    ("大学", "school"), ("学院", "school"), ("职校", "school"), ("技校", "school"),
    # hospitals
    ("卫生服务中心", "hospital"), ("卫生院", "hospital"), ("卫生室", "hospital"), ("保健院", "hospital"),
    ("医院", "hospital"), ("诊所", "hospital"),
    # companies and shops
    ("有限责任公司", "company"), ("有限公司", "company"), ("分公司", "company"), ("公司", "company"),
    ("集团", "company"), ("物业", "company"), ("厂", "company"), ("酒店", "company"), ("饭店", "company"),
    ("酒家", "company"), ("美容院", "company"), ("健身房", "company"), ("酒楼", "company"),
    ("餐厅", "company"), ("超市", "company"), ("药房", "company"),
    ("药店", "company"), ("店", "company"),
    # markets and platforms
    ("市场", "market"), ("平台", "market"), ("广场", "market"), ("商场", "market"),
    # venues
    ("景区", "venue"), ("公园", "venue"), ("体育馆", "venue"), ("图书馆", "venue"), ("博物馆", "venue"),
    ("产业园", "venue"), ("工业园", "venue"), ("科技园", "venue"), ("变电站", "venue"), ("站", "venue"),
    # communities
    ("小区", "community"), ("花园", "community"), ("家园", "community"), ("公寓", "community"),
    ("社区", "community"), ("新村", "community"), ("山庄", "community"), ("公馆", "community"),
    ("华庭", "community"), ("苑", "community"), ("府", "community"), ("城", "community"),
    ("湾", "community"), ("村", "community"), ("园", "community"), ("里", "community"),
    # roads
    ("大道", "road"), ("大街", "road"), ("路", "road"), ("街", "road"), ("巷", "road"),
]
_SUFFIX_KIND = dict(_SUFFIXES)
# Characters that must not follow a suffix for it to end a name ("路灯" is no road, "厂家" no factory).
_NOT_AFTER: dict[str, str] = {
    "路": "灯面况费由途人演标牌基政线径过子数",
    "街": "道头坊区边",
    "厂": "家商长房区",
    "城": "市区管乡镇中际铁",
    "府": "门",
    "里": "面边",
    "村": "民委组干",
    "站": "长点台不起着在出立了岗队满稳",
    "店": "家员主铺长面",
    "湾": "区",
    "园": "区长",
    "社区": "医卫",
    "物业": "费管公服",
}
_SUFFIX_RE = re.compile(
    "|".join(
        re.escape(s) + (f"(?![{_NOT_AFTER[s]}])" if s in _NOT_AFTER else "")
        for s, _ in sorted(_SUFFIXES, key=lambda p: -len(p[0]))
    )
)
_MAX_PREFIX = {"community": 8, "company": 14, "school": 10, "hospital": 10, "market": 8, "venue": 8, "road": 6}
_ONE_CHAR_SUFFIXES = {s for s, _ in _SUFFIXES if len(s) == 1}
# Last characters of a prefix that turn a one-character suffix into a common word (政府, 县城, 公园…).
_BAD_PREFIX_END: dict[str, str] = {
    "府": "政官王首学帅",
    "城": "县省京进满古老新围长卫子",
    "湾": "台港海河",
    "园": "公儿业校物乐墓果菜陵植庄田茶花家游",
    "村": "农乡山渔",
    "里": "这那哪家城村公千万心夜",
    "苑": "文",
    "街": "商步老大小临沿",
    "路": "公铁马道线网思出走修门来去半迷让带引开小大水岔套后前正跑赶上",
    "店": "商饭酒网门分总本小药书旅客",
    "站": "车网基加油垃圾中转充电收费火汽客运公交地铁高服务工作",
    "厂": "工",
    "大学": "上考读念",
    "小学": "上读念",
    "中学": "上读念",
    "学校": "上到去",
}
_BAD_PREFIX_END_ALL = {k: set(v) for k, v in _BAD_PREFIX_END.items()}
# Whole names (prefix + suffix) that are generic, not places.
_GENERIC_NAMES = {
    "物业公司", "开发公司", "建筑公司", "房地产公司", "电力公司", "燃气公司", "自来水公司", "供电公司",
    "保险公司", "快递公司", "公交公司", "出租车公司", "劳务公司", "中介公司", "网络公司", "科技公司",
    "投资公司", "担保公司", "物流公司", "装修公司", "施工公司", "开发商公司", "有限公司", "这家公司",
    "老旧小区", "商品房小区", "安置小区", "新建小区", "农村社区", "城市社区", "新农村", "美丽乡村",
    "农贸市场", "菜市场", "房地产市场", "劳动力市场", "网络平台", "服务平台", "公共平台", "政务平台",
    "交易平台", "投资平台", "理财平台", "网贷平台", "人民广场", "公办学校", "民办学校", "私立学校",
    "公办幼儿园", "民办幼儿园", "普惠幼儿园", "私立幼儿园", "附近学校", "初级中学", "高级中学",
    "职业学校", "培训学校", "驾驶学校", "定点医院", "公立医院", "民营医院", "私立医院", "三甲医院",
    "十字路", "主干道路", "城市道路", "农村公路", "乡村道路", "国家大道", "高速公路", "水泥路",
    "柏油路", "断头路", "健身房", "便利店", "火车站", "汽车站", "高铁站", "地铁站", "公交站",
    "加油站", "变电站", "垃圾站", "派出所", "服装厂", "化工厂", "水泥厂", "砖厂", "养猪场",
    "上班路", "回家路", "上学路", "放学路", "小区路", "景区路",
}
# Words after whose last occurrence a name starts (the name never contains one of them).
_BOUNDARY_WORDS = (
    "关于", "反映", "投诉", "举报", "建议", "请求", "要求", "咨询", "希望", "恳请", "强烈", "位于", "住在", "附近",
    "周边", "对面", "旁边", "门口", "隔壁", "楼下", "楼上", "一个", "一家", "这家", "那家", "哪个", "请问", "问题",
    "领导", "书记", "市长", "您好", "你好", "尊敬", "所在", "整个", "各个", "多个", "几个", "这个", "那个", "我们",
    "我家", "居住", "老旧", "没有", "已经", "还是", "就是", "以及", "还有", "但是", "因为", "所以", "如果", "目前",
    "现在", "今天", "昨天", "本人", "业主", "居民", "村民", "家长", "学生", "市民", "群众", "工人", "员工", "职工",
    "患者", "消费者", "会员", "关注", "严惩", "查处", "处理", "解决", "整治", "取缔", "拆除", "调查", "通过",
    "经过", "对于", "针对", "导致", "造成", "出现", "发生", "沿线", "一带", "听说", "取消", "恢复", "开通", "公开",
    "控制", "抓捕", "遥控", "操控", "参加", "前往", "来到", "就读", "就诊", "入住", "购买", "购房", "买了", "办理",
    "办了", "区域", "片区", "辖区", "境内", "地区", "其中", "以后", "之后", "以前", "之前",
)
_BOUNDARY_CHARS = set("的在了是我你他她们这那该此其某个住于被把给向从到和与及或对为就也都还又很并且而即等去次")
_HAS_LETTER = re.compile(f"[{_CJK}A-Za-z]")
_BOUNDARY_RE = re.compile("|".join(sorted(map(re.escape, _BOUNDARY_WORDS), key=len, reverse=True)))

# -- roads: numbered variants -----------------------------------------------------------------------
# Each pattern starts a number only where its run starts (the lookbehinds), so a long run of digits is read
# once, not once per position (quadratic: 20,000 digits took minutes).
_ROAD_TAIL = re.compile(r"(?<![0-9一二三四五六七八九十])(?:[0-9一二三四五六七八九十]+段)?(?:[0-9]+(?:-[0-9]+)?号)?")

# -- lines --------------------------------------------------------------------------------------------
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
# 110kV / 110KV / 110千伏 / 11万伏 followed, within a few characters, by 线 / 线路 / 高压线 / 电线.
_POWER_LINE = re.compile(
    r"(?<![0-9])(?P<volt>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kK][vV]|千伏|万伏)"
    rf"(?P<mid>[{_CJK}A-Za-z0-9、\-]{{0,10}}?)(?P<line>高压电线|高压线路|高压线|输电线路|线路|电线|线)"
)
_HIGH_VOLTAGE = re.compile(r"高压(?:电)?线(?:路)?")
_METRO_LINE = re.compile(r"(?:地铁|轨道交通|轻轨)?(?P<num>[0-9]{1,2}|[一二三四五六七八九十]{1,2})号线")
_BUS_LINE = re.compile(
    r"(?<![0-9A-Za-z])(?P<num>[A-Za-z]?[0-9]{1,4})路(?:公交车?|公交线路?|车|线路?)?(?![0-9])"
)
_GENERIC_LINE = re.compile(r"^(?:[0-9]+kV)?高压(?:电)?线(?:路)?$|^[0-9]+kV(?:线路|电线|线)$")


def _district_matches(text: str) -> Iterator[re.Match[str]]:
    """``_DISTRICT.finditer(text)``, without trying the pattern where it cannot start: every district
    name holds one of `_DISTRICT_HINT` at most `_DISTRICT_REACH` characters after its start, so the
    search resumes that far before the next such character (about twice as fast on grievance texts)."""
    pos = 0
    hint, district = _DISTRICT_HINT.search, _DISTRICT.search
    while (h := hint(text, pos)) is not None and (m := district(text, max(pos, h.start() - _DISTRICT_REACH))):
        yield m
        pos = m.end()  # matches are never empty


def _district_spans(text: str) -> list[Place]:
    found: list[Place] = []
    for m in _district_matches(text):
        name, start = m.group(0), m.start()
        if not name[0].isascii():
            # Trim boundary characters on the left (我在青林区 -> 青林区) and check what is left.
            name, start = _trim_left(name, start)
            if len(name) < 3:
                continue
            core = _strip_district_suffix(name)
            bad_end = _DISTRICT_BAD_END.get(name[-1], set()) | _DISTRICT_BAD_END_ANY
            if len(core) < 2 or name in _DISTRICT_GENERIC or core[-1] in bad_end:
                continue
        found.append(Place(name, "district", start, start + len(name)))
    return found


def _strip_district_suffix(name: str) -> str:
    for suffix in ("街道", "自治县", "新区", "开发区", "经开区", "高新区"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name[:-1]


def _trim_left(name: str, start: int) -> tuple[str, int]:
    """Cut a candidate after its last boundary word or character."""
    cut = 0
    for m in _BOUNDARY_RE.finditer(name):
        cut = max(cut, m.end())
    for i, ch in enumerate(name):
        if ch in _BOUNDARY_CHARS and i + 1 > cut:
            cut = i + 1
    return name[cut:], start + cut


def _named_places(text: str, districts: list[Place]) -> list[Place]:
    district_ends = sorted(p.end for p in districts)
    found: list[Place] = []
    for m in _SUFFIX_RE.finditer(text):
        suffix = m.group(0)
        kind = _SUFFIX_KIND[suffix]
        s, e = m.start(), m.end()
        if kind == "road":
            e += len(_ROAD_TAIL.match(text, e).group(0))
        # Walk left over name characters, not past the end of a district name, nor further than a name
        # can reach (a bounded window: over a long run of 路 an unbounded walk made each suffix cost the run).
        before = bisect_right(district_ends, s)
        left_limit = max(district_ends[before - 1] if before else 0, s - _NAME_WINDOW)
        tail = _NAME_TAIL.search(text, left_limit, s)
        if tail is None:
            continue
        prefix, start = _trim_left(tail.group(0), tail.start())
        if kind == "road" and _TRAILING_DIGITS.search(prefix):
            continue  # 312路: a bus route, found by _lines
        if len(prefix) > _MAX_PREFIX[kind]:
            start += len(prefix) - _MAX_PREFIX[kind]
            prefix = prefix[-_MAX_PREFIX[kind] :]
        if len(prefix) < 2 or not _HAS_LETTER.search(prefix):
            continue
        if suffix in _BAD_PREFIX_END_ALL and prefix[-1] in _BAD_PREFIX_END_ALL[suffix]:
            continue
        name = text[start:e]
        if name in _GENERIC_NAMES or prefix in _GENERIC_NAMES:
            continue
        found.append(Place(name, kind, start, e))
    return found


def _kv(volt: str, unit: str) -> str:
    value = float(volt)
    if unit == "万伏":
        value *= 10
    return f"{value:g}kV"


def _lines(text: str) -> list[Place]:
    # Each pattern needs a character (or word) most texts lack: testing for it first skips most scans.
    found: list[Place] = []
    if "线" in text:
        for m in _POWER_LINE.finditer(text):
            line = m.group("line")
            kv = _kv(m.group("volt"), m.group("unit"))
            name = f"{kv}{m.group('mid')}{'高压线' if line in ('线', '电线') else line}"
            found.append(Place(name, "line", m.start(), m.end()))
        if "高压" in text:
            for m in _HIGH_VOLTAGE.finditer(text):
                found.append(Place("高压线", "line", m.start(), m.end()))
        if "号线" in text:
            for m in _METRO_LINE.finditer(text):
                num = m.group("num")
                if not num.isdigit():
                    num = str(_cn_number(num))
                found.append(Place(f"地铁{num}号线", "line", m.start(), m.end()))
    if "路" in text:
        for m in _BUS_LINE.finditer(text):
            found.append(Place(f"{m.group('num')}路", "line", m.start(), m.end()))
    return found


def _cn_number(text: str) -> int:
    if text == "十":
        return 10
    if text.startswith("十"):
        return 10 + _CN_DIGITS[text[1]]
    if len(text) == 2 and text.endswith("十"):
        return _CN_DIGITS[text[0]] * 10
    return _CN_DIGITS[text[0]]


def _district_rank(place: Place) -> int:
    name = place.name
    if name.endswith(("镇", "乡", "街道")):
        return 0
    if name.endswith(("区", "县")):
        return 1
    if name.endswith("市"):
        return 2
    return 3  # 省


def extract_places(text: str) -> list[Place]:
    """Place names in `text` (best normalised first, see features.text.normalise), most specific first.

    Order: named places (community, company, school, hospital, market, venue) in text order, then roads,
    lines (named lines before generic power lines), then districts from the smallest (镇, 街道) to the
    largest (省). A place inside a longer one (学府路 in 学府路小学) is dropped; a name that occurs several
    times is returned once, at its first occurrence.
    """
    if not text:
        return []
    districts = _district_spans(text)
    candidates = _named_places(text, districts) + _lines(text)
    # Longest first, so contained spans can be dropped.
    candidates.sort(key=lambda p: (p.start, -(p.end - p.start)))
    # Sorted by start, then longest first: a candidate lies inside a kept one exactly when it ends no later
    # than the furthest end kept so far (one pass, not a scan of every kept place per candidate).
    kept: list[Place] = []
    furthest = -1
    for place in candidates:
        if place.end <= furthest:
            continue
        kept.append(place)
        furthest = place.end
    # A district overlapping a named place is part of its name (e.g. 景区 inside 翠屏山景区).
    starts = [k.start for k in kept]
    reach = list(accumulate((k.end for k in kept), max))
    kept += [d for d in districts if not _overlaps(d, starts, reach)]

    def order(p: Place) -> tuple[int, int, int, int]:
        weak_line = 1 if p.kind == "line" and not is_specific(p) else 0
        sub = _district_rank(p) if p.kind == "district" else weak_line
        return (_RANK[p.kind], sub, p.start, -(p.end - p.start))

    seen: set[tuple[str, str]] = set()
    out: list[Place] = []
    for place in sorted(kept, key=order):
        if (place.name, place.kind) in seen:
            continue
        seen.add((place.name, place.kind))
        out.append(place)
    return out


def _overlaps(place: Place, starts: list[int], reach: list[int]) -> bool:
    """Whether ``place`` overlaps one of the places sorted by ``starts``, ``reach`` being their running
    furthest end."""
    before = bisect_left(starts, place.end)
    return before > 0 and reach[before - 1] > place.start


def primary_place(text: str, *, specific_only: bool = False) -> Place | None:
    """The most specific place of `text`, or None. With `specific_only`, districts and generic power
    lines do not count (see `is_specific`)."""
    for place in extract_places(text):
        if not specific_only or is_specific(place):
            return place
    return None


def is_specific(place: Place) -> bool:
    """Whether a place singles out one location: not a district, not a generic power line ("110kV高压线"
    could be anywhere)."""
    if place.kind == "district":
        return False
    return not (place.kind == "line" and _GENERIC_LINE.match(place.name))


_KEY_SUFFIXES: dict[str, tuple[str, ...]] = {
    "community": ("小区", "社区"),
    "company": ("有限责任公司", "股份有限公司", "有限公司", "分公司", "公司", "集团", "厂"),
    "road": (),
}
_KEY_NUMBER = re.compile(r"(?<![0-9一二三四五六七八九十])(?:[0-9一二三四五六七八九十]+段)?(?:[0-9]+(?:-[0-9]+)?号)?$")


def place_key(place: Place) -> str:
    """The name reduced for comparison: 御景湾小区 -> 御景湾, 金汇服装有限公司 -> 金汇服装,
    长宁路28号 -> 长宁路."""
    name = place.name
    if place.kind == "road":
        return _KEY_NUMBER.sub("", name) or name
    for suffix in _KEY_SUFFIXES.get(place.kind, ()):
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def same_place(a: str, b: str) -> bool:
    """Whether two place keys may name the same place: equal, or one (of 2+ characters) inside the
    other (金汇服装 / 帮助讨要金汇服装, 翠湖湾 / 翠湖湾二期)."""
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return len(short) >= 2 and short in long_
