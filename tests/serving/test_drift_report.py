"""GET /v1/reports/drift (issue 17, items 3, 4 and the check in "Checks"): the service is fed demo cases,
then a shifted stream (one department's cases tripled, a new topic whose words training never saw), and the
report flags exactly the figures that moved; an unshifted stream flags nothing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.prepared import prepared_cases
from models.bundle import TriageBundle
from models.drift import compare, load_drift_config
from models.profile import case_figures, reference_from_training, router_vocabulary
from serving.app import create_app
from serving.settings import Settings
from tests.keys import ADMIN, INTAKE, REVIEWER

#: A topic the demo data never mentions (delivery drones), written for this test.
NEW_TOPIC = [
    ("无人机外卖起降点噪音扰民",
     "{p}楼顶新设了无人机外卖起降点，每天从早到晚螺旋桨嗡嗡作响，无人机低空盘旋，老人午睡都睡不好。运营企业说已取得"
     "空域许可，可谁批的起降点、飞行架次有没有上限，物业和街道都说不清楚。"),
    ("无人机配送航线经过小区上空",
     "{p}上空成了无人机配送航线，无人机贴着窗户飞过，担心电池坠落砸到人。听说低空航线要报民航和空管备案，请核查这条"
     "航线的审批手续，并公开飞行时段和高度。"),
    ("低空无人机起降场选址离学校太近",
     "{p}旁边要建低空无人机起降场和充换电机库，离学校不到百米，家长担心桨叶伤人、电池起火和噪音，希望公开选址论证"
     "材料并重新选址。"),
    ("无人机夜间试飞灯光闪烁",
     "{p}附近无人机公司夜间试飞编队，机身灯光闪烁照进卧室，螺旋桨噪音持续到凌晨。试飞是否需要报备空域，夜航有没有"
     "时段限制，请相关部门给个说法。"),
    ("无人机坠落砸坏车辆找不到责任方",
     "{p}停车场一架配送无人机坠落砸坏了车顶，运营平台说是遥控信号干扰，保险公司说低空飞行器不在承保范围，互相推诿，"
     "请明确无人机事故的赔偿责任。"),
    ("无人机拍摄住户窗内涉嫌侵犯隐私",
     "{p}经常有无人机悬停在窗外航拍，镜头对着住户阳台和卧室，怀疑偷拍。飞手说是测绘作业，但拿不出空域审批，请查处"
     "违规飞行并删除拍摄的影像。"),
]
PLACES = ["南湖区翠湖湾小区", "青林区学府路", "西岭区锦绣花园", "东港区滨江苑", "北山区幸福里", "青林区景苑小区",
          "西岭区金桂园"]
SAMPLE = 400
SHIFTED_BASE = 250
NEW_TOPIC_CASES = 40
TRIPLED = "交通运输"


def new_topic_cases(n: int) -> list[dict[str, str]]:
    cases = []
    for i in range(n):
        title, body = NEW_TOPIC[i % len(NEW_TOPIC)]
        place = PLACES[(i // len(NEW_TOPIC)) % len(PLACES)]
        cases.append({"case_id": f"NEW-{i}", "title": title, "body": body.format(p=place)})
    return cases


@pytest.fixture(scope="module")
def profiled_bundle_dir(
    demo_bundle: TriageBundle, demo_cases: pd.DataFrame, demo_split: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The demo bundle with a reference profile of the demo cases as it routes them (training does the same on
    held-out cases) and the training split's tokens."""
    prepared = prepared_cases(demo_cases[["title", "body"]])
    figures = [case_figures(p, r.label, r.confidence, None) for p, r in zip(prepared, demo_bundle.route(prepared),
                                                                            strict=True)]
    seen = {t for p in prepared_cases(demo_split[0][["title", "body"]]) for t in p.tokens}
    reference = reference_from_training(figures, seen, router_vocabulary(demo_bundle.router))
    bundle = replace(demo_bundle, reference=reference)
    directory = tmp_path_factory.mktemp("profiled-bundle")
    bundle.save(directory)
    return directory


@pytest.fixture
def client(profiled_bundle_dir: Path, db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model_uri=str(profiled_bundle_dir), database_url=db_url,
                        spool_dir=tmp_path / "spool")
    with TestClient(create_app(settings), headers=ADMIN) as c:
        yield c


def feed(client: TestClient, cases: list[dict[str, str]]) -> None:
    for start in range(0, len(cases), 100):
        answer = client.post("/v1/triage/batch", json={"cases": cases[start:start + 100]}, headers=INTAKE)
        assert answer.status_code == 200, answer.text


def as_requests(frame: pd.DataFrame, prefix: str) -> list[dict[str, str]]:
    return [{"case_id": f"{prefix}-{row.case_id}", "title": row.title, "body": row.body}
            for row in frame.itertuples()]


def streams(demo: pd.DataFrame) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """An unshifted sample of the demo cases; and another sample with TRIPLED's cases tripled (other cases of
    that department, not copies, which the hot-issue detector would group) and the new topic added."""
    rng = random.Random(17)
    order = list(range(len(demo)))
    rng.shuffle(order)
    plain = demo.iloc[order[:SAMPLE]]
    rest = demo.iloc[order[SAMPLE:]]
    mine = demo.iloc[order][demo.iloc[order]["department"] == TRIPLED]
    # The base keeps the department at its share of the demo (about 12%); then twice as many more of its cases.
    base_share = round(SHIFTED_BASE * len(mine) / len(demo))
    shifted = pd.concat([rest[rest["department"] != TRIPLED].head(SHIFTED_BASE - base_share), mine.head(base_share)])
    extra = mine.iloc[base_share:3 * base_share]
    assert len(extra) == 2 * base_share, "enough other cases of the department to triple it"
    shifted_stream = as_requests(shifted, "S") + as_requests(extra, "X") + new_topic_cases(NEW_TOPIC_CASES)
    random.Random(3).shuffle(shifted_stream)
    return as_requests(plain, "P"), shifted_stream


def report(client: TestClient, **params: str) -> dict[str, Any]:
    answer = client.get("/v1/reports/drift", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.slow
def test_a_shifted_stream_flags_exactly_the_figures_that_moved_and_an_unshifted_one_nothing(
    client: TestClient, demo_cases: pd.DataFrame
) -> None:
    plain, shifted = streams(demo_cases)
    feed(client, plain)
    calm = report(client)
    assert calm["n_cases"] == len(plain) and calm["enough_cases"]
    assert calm["flagged"] == [], [(f["name"], f["statistic"]) for f in calm["figures"]]
    assert all(f["state"] == "ok" and f["sentence"] is None for f in calm["figures"])

    moved_at = datetime.now(UTC).isoformat()
    feed(client, shifted)
    drifted = report(client, since=moved_at)
    assert drifted["n_cases"] == len(shifted)
    assert drifted["flagged"] == ["department_mix", "vocabulary", "new_terms"]
    figures = {f["name"]: f for f in drifted["figures"]}
    assert figures["department_mix"]["detail"]["moved"][0]["key"] == TRIPLED
    assert TRIPLED in figures["department_mix"]["sentence"]
    confidence_by_department = {d["department"]: d for d in figures["confidence"]["detail"]["by_department"]}
    assert sum(d["n_cases"] for d in confidence_by_department.values()) == len(shifted)
    assert figures["department_mix"]["detail"]["moved"][0]["window"] == pytest.approx(
        confidence_by_department[TRIPLED]["n_cases"] / len(shifted), abs=1e-4)
    assert 0 < confidence_by_department[TRIPLED]["reference"] <= 1
    terms = [t["term"] for t in figures["new_terms"]["detail"]["terms"]]
    assert terms[0] == "无人机" and "无人机" in figures["new_terms"]["sentence"]
    assert figures["vocabulary"]["detail"]["window_unseen_share"] > figures["vocabulary"]["detail"][
        "reference_unseen_share"]
    for figure in drifted["figures"]:
        assert (figure["sentence"] is None) == (figure["state"] == "ok")
    # Both streams fall in this ISO week: its figures are the whole window's.
    whole = report(client)
    (week,) = whole["weeks"]
    assert week["n_cases"] == len(plain) + len(shifted)
    assert {name for name, f in week["figures"].items() if f["state"] != "ok"} == set(whole["flagged"])


def test_drift_report_is_for_admins_and_names_a_bad_date(client: TestClient) -> None:
    assert client.get("/v1/reports/drift", headers=REVIEWER).status_code == 403
    bad = client.get("/v1/reports/drift", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]


def test_a_window_with_too_few_cases_flags_nothing_but_shows_its_figures(client: TestClient) -> None:
    feed(client, new_topic_cases(20))
    few = report(client)
    assert few["n_cases"] == 20 and not few["enough_cases"] and few["flagged"] == []
    terms = {f["name"]: f for f in few["figures"]}["new_terms"]["detail"]["terms"]
    assert terms and terms[0]["term"] == "无人机"


def test_a_model_without_a_reference_profile_answers_409_saying_why(demo_bundle_dir: Path, tmp_path: Path) -> None:
    settings = Settings(model_uri=str(demo_bundle_dir), database_url=f"sqlite:///{tmp_path / 'n.db'}",
                        spool_dir=tmp_path / "spool")
    with TestClient(create_app(settings), headers=ADMIN) as c:
        answer = c.get("/v1/reports/drift")
    assert answer.status_code == 409
    assert "no reference profile" in answer.json()["detail"]


def test_a_red_heavy_stream_flags_the_risk_mix() -> None:
    """The risk figure, which the demo bundle (no risk model) cannot move through the service."""
    from features.prepared import prepare

    case = prepare("路灯坏了", "小区门口的路灯不亮")
    base = [case_figures(case, "城乡建设", 0.9, level) for level in ["green"] * 70 + ["yellow"] * 25 + ["red"] * 5]
    reference = reference_from_training(base, set(case.tokens), None)
    window = [case_figures(case, "城乡建设", 0.9, level) for level in ["green"] * 55 + ["yellow"] * 20 + ["red"] * 25]
    result = compare(reference, window, vocabulary=None, config=load_drift_config())
    assert result["flagged"] == ["risk_mix"]
    (risk,) = [f for f in result["figures"] if f["name"] == "risk_mix"]
    assert risk["state"] == "drift" and "红色占比由5.0%升至25.0%" in risk["sentence"]
    assert compare(reference, base, vocabulary=None, config=load_drift_config())["flagged"] == []


def test_results_over_time_from_reviews_beside_the_drift_and_on_the_dashboard(client: TestClient) -> None:
    """Auto-routing coverage and precision and red recall, by week and department, from reviews."""
    from serving.dependencies import services_of
    from tests.keys import ADMIN_KEY
    from tests.serving.test_web_pages import log_in

    cases = new_topic_cases(12)
    feed(client, cases)
    store = services_of(client.app).store
    predictions = [store.latest_prediction(c["case_id"]) for c in cases]
    auto = [p for p in predictions if not p.needs_review]
    assert len(auto) >= 3, "the demo router routes some of the drone cases without review"
    # Three auto-routed cases reviewed: two kept, one moved to another department.
    other = next(d for d in ("城乡建设", "交通运输") if d != auto[2].department)
    store.add_review(auto[0].case_id, auto[0].id, "li")
    store.add_review(auto[1].case_id, auto[1].id, "li")
    store.add_review(auto[2].case_id, auto[2].id, "li", decided_department=other)
    # Two other cases a reviewer made red (department left standing); the model (no risk model) called neither red.
    reds = [p for p in predictions if p not in auto[:3]][:2]
    for p in reds:
        store.add_review(p.case_id, p.id, "wang", decided_level="red")
    kept_auto = sum(not p.needs_review for p in reds)
    results = report(client)["results"]
    (week,) = results["by_week"]
    assert week["predictions"] == 12
    assert week["auto_routing_coverage"] == pytest.approx(len(auto) / 12)
    assert week["reviewed_auto_routed"] == 3 + kept_auto
    assert week["auto_routing_precision"] == pytest.approx((2 + kept_auto) / (3 + kept_auto))
    assert week["reviewed_red"] == 2 and week["red_recall"] == 0
    by_department = {d["department"]: d for d in results["by_department"]}
    assert sum(d["predictions"] for d in by_department.values()) == 12
    assert sum(d["reviewed_red"] for d in by_department.values()) == 2

    page = TestClient(client.app)
    assert log_in(page, ADMIN_KEY).status_code == 303
    html = page.get("/dashboard").text
    assert "数据漂移与模型效果" in html and week["week"] in html
    assert "案件不足" in html  # 12 cases: shown, not judged
    assert f"{100 * (2 + kept_auto) / (3 + kept_auto):.1f}%" in html and "红色召回率" in html


def test_the_dashboards_report_is_reused_for_a_while_and_then_made_again(client: TestClient) -> None:
    from serving.dependencies import services_of
    from serving.drift_report import recent_drift_report

    services = services_of(client.app)
    model = services.model_state.model
    feed(client, new_topic_cases(6))
    first = recent_drift_report(services.store, model, weeks=8, limit=100)
    feed(client, [dict(c, case_id=f"MORE-{i}") for i, c in enumerate(new_topic_cases(6))])
    assert recent_drift_report(services.store, model, weeks=8, limit=100) is first
    fresh = recent_drift_report(services.store, model, weeks=8, limit=100, max_age=0)
    assert first["n_cases"] == 6 and fresh["n_cases"] == 12
