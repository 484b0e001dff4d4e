"""The department router on the demo data: quality, determinism, behaviour, route output and persistence."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zstandard
from sklearn.metrics import f1_score

from models.bundle import BUNDLE_FILE, GZIP_BUNDLE_FILE, TOP_K, BundleFormatError, TriageBundle
from models.mlflow_model import load_model, routes_frame
from models.router import ClassifierParams, FeatureParams, build_router
from models.thresholds import auto_routed
from training.config import TrainConfig

INPUT = ["title", "body"]

# -- quality ---------------------------------------------------------------------------------------


def test_router_beats_the_majority_class_baseline_by_a_wide_margin(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = demo_split
    pred = [r.label for r in demo_bundle.route(test[INPUT])]
    macro_f1 = f1_score(test["department"], pred, average="macro")
    majority = train["department"].value_counts().idxmax()
    baseline = f1_score(test["department"], [majority] * len(test), average="macro")
    assert macro_f1 >= 0.6 and macro_f1 > baseline + 0.3, (
        f"held-out macro-F1 {macro_f1:.3f} vs majority-class baseline {baseline:.3f}"
    )


def test_held_out_split_is_disjoint_from_training_split(demo_split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = demo_split
    assert not set(train["group_key"]) & set(test["group_key"])
    assert set(test["department"]) == set(train["department"])


# -- determinism -----------------------------------------------------------------------------------


def test_two_routers_fitted_with_the_same_seed_give_identical_probabilities(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame], fast_config: TrainConfig
) -> None:
    train, test = demo_split
    again = build_router(fast_config.features, fast_config.classifier, fast_config.seed)
    again.fit(train[INPUT], np.asarray(train["department"], dtype=object))
    assert list(again.classes_) == demo_bundle.classes
    np.testing.assert_array_equal(again.predict_proba(test[INPUT]), demo_bundle.router.predict_proba(test[INPUT]))


def test_build_router_passes_the_seed_and_params_everywhere() -> None:
    features = FeatureParams(char_weight=0.5, word_min_df=3)
    router = build_router(features, ClassifierParams(C=0.25, calibration_folds=4), seed=7)
    params = router.get_params()
    assert params["features__char_weight"] == 0.5
    assert params["features__word_min_df"] == 3
    assert params["classifier__estimator__C"] == 0.25
    assert params["classifier__estimator__random_state"] == 7
    assert params["classifier__cv"].seed == 7
    assert params["classifier__cv"].folds == 4
    assert params["classifier__cv"].get_n_splits(y=["a"] * 9 + ["b"] * 3) == 3  # as many as the rarest allows
    assert params["classifier__cv"].get_n_splits(y=["a"] * 9 + ["b"] * 9) == 4
    assert not hasattr(router, "classes_")  # unfitted
    lr = build_router(features, ClassifierParams(kind="logistic_regression"), seed=7)
    assert type(lr.get_params()["classifier__estimator"]).__name__ == "LogisticRegression"
    assert lr.get_params()["classifier__estimator__random_state"] == 7


# -- behaviour: a paraphrase keeps its department --------------------------------------------------

PARAPHRASES = [
    (
        "劳动和社会保障",
        ("工地老板拖欠我们二十多个农民工三个月工资",
         "我们在北山县一个工地干了三个月活，包工头一直说没钱，到现在一分工资都没拿到，请劳动部门帮忙讨薪。"),
        ("二十几名民工三个月没拿到工钱",
         "北山县某建筑工地的包工头欠着我们二十几个工人三个月的工钱，一直推说结不了账，希望劳动监察部门帮我们把血汗钱要回来。"),
    ),
    (
        "教育文体",
        ("幼儿园额外收取兴趣班费用是否合理",
         "孩子在南湖区一所公办幼儿园上学，园里每学期除了保教费还要交八百元兴趣班费用，不交就不让参加，请问这样收费合规吗？"),
        ("公办幼儿园强制收兴趣班费",
         "南湖区一家公办幼儿园除了每月保教费，还要求每个孩子每学期另交八百元兴趣班的钱，家长不交孩子就不能参加活动，请问合理吗？"),
    ),
    (
        "环境保护",
        ("工厂夜间生产噪音严重扰民",
         "东港区滨江大道旁边的一家机械加工厂每天晚上十点以后还在开机器，轰隆隆的噪音吵得附近居民根本睡不着。"),
        ("机械厂深夜开工噪声扰民",
         "滨江大道边上那家机械加工厂天天夜里十点后还开着机器生产，噪声很大，周围住户整晚睡不好觉，请环保部门来查一查。"),
    ),
    (
        "交通运输",
        ("205路公交车改线后很不方便",
         "205路公交车原来经过学府路，最近改线不走了，附近居民上班要多走二十分钟，希望恢复原线路。"),
        ("205路公交线路调整后不再经过学府路",
         "最近205路公交改道，学府路一带的站点都取消了，我们上下班要走很远去别的站坐车，希望公交公司恢复原来的线路。"),
    ),
    (
        "卫生计生",
        ("对医院治疗结果有异议，医疗纠纷如何处理",
         "我母亲在南湖区人民医院做手术后出现感染，医院说不是他们的责任，我们想申请医疗事故鉴定，请问流程是什么？"),
        ("母亲术后感染医院拒不担责",
         "我妈在南湖区人民医院做完手术后伤口感染了，院方说跟他们没关系，我们想知道怎么申请医疗事故鉴定，这种医疗纠纷该找哪个部门？"),
    ),
    (
        "城乡建设",
        ("物业公司乱收费服务差",
         "鑫源物业接管我们小区后物业费涨了，可是电梯经常坏，楼道没人打扫，业主们想换掉物业公司。"),
        ("鑫源物业涨价服务却越来越差",
         "自从鑫源物业进驻我们小区，物业费上调了，但电梯三天两头坏，楼道卫生也没人管，业主们希望能更换物业公司。"),
    ),
    (
        "商贸旅游",
        ("健身房倒闭会员卡无法退款",
         "我在高新区一家健身房办了年卡，用了两个月健身房就关门了，老板联系不上，预付卡里的钱退不回来。"),
        ("健身房关门跑路，年卡的钱退不了",
         "高新区一家健身房我刚办了年卡才去了两个月，健身房突然关门，老板电话打不通，卡里剩下的预付款没办法退。"),
    ),
]


@pytest.mark.parametrize(("department", "first", "second"), PARAPHRASES, ids=[p[0] for p in PARAPHRASES])
def test_a_paraphrase_keeps_its_department(
    demo_bundle: TriageBundle, department: str, first: tuple[str, str], second: tuple[str, str]
) -> None:
    a, b = demo_bundle.route([first, second])
    assert a.label == b.label, f"paraphrases routed apart: {a.label} ({a.confidence:.2f}) vs {b.label}"
    assert a.label == department, f"expected {department}, got {a.label} ({a.confidence:.2f})"


def test_paraphrase_texts_are_fresh_not_copied_from_the_demo_data(demo_cases: pd.DataFrame) -> None:
    titles = set(demo_cases["title"])
    bodies = set(demo_cases["body"])
    for _, first, second in PARAPHRASES:
        for title, body in (first, second):
            assert title not in titles and body not in bodies


def test_personal_data_does_not_change_the_route(demo_bundle: TriageBundle) -> None:
    title, body = PARAPHRASES[0][1]
    plain = demo_bundle.route_one(title, body)
    with_phone = demo_bundle.route_one(title, body + "我姓王，电话13987654321。")
    other_phone = demo_bundle.route_one(title, body + "我姓王，电话18612345678。")
    assert with_phone == other_phone
    assert with_phone.label == plain.label


# -- route_one output ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "body"),
    [
        PARAPHRASES[2][1],
        ("18路公交车班次太少", ""),  # title only
        ("", "我们小区的路灯坏了三个星期了"),  # body only
        (None, None),  # nothing at all still gets a well-formed route
    ],
)
def test_route_one_output_is_well_formed(demo_bundle: TriageBundle, title: str | None, body: str | None) -> None:
    route = demo_bundle.route_one(title, body)
    labels = [label for label, _ in route.top]
    probs = [p for _, p in route.top]
    assert len(route.top) == TOP_K
    assert len(set(labels)) == TOP_K
    assert set(labels) <= set(demo_bundle.classes)
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert route.top[0] == (route.label, route.confidence)
    assert 0.0 <= route.confidence <= 1.0
    limit = demo_bundle.thresholds.get(route.label)
    assert route.needs_review == (limit is None or route.confidence < limit)


def test_route_top_probabilities_are_the_largest_of_predict_proba(
    demo_bundle: TriageBundle, demo_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, test = demo_split
    cases = test[INPUT].head(20)
    proba = demo_bundle.predict_proba(cases)
    for route, row in zip(demo_bundle.route(cases), proba, strict=True):
        np.testing.assert_allclose([p for _, p in route.top], np.sort(row)[::-1][:TOP_K], rtol=0, atol=0)
        assert route.label == demo_bundle.classes[int(row.argmax())]


def test_needs_review_follows_the_thresholds(demo_bundle: TriageBundle, demo_split) -> None:
    _, test = demo_split
    routes = demo_bundle.route(test[INPUT])
    assert any(r.needs_review for r in routes) and not all(r.needs_review for r in routes)
    for r in routes:
        limit = demo_bundle.thresholds[r.label]
        assert r.needs_review == (limit is None or r.confidence < limit)
    # Without thresholds every case goes to review; with a threshold of 0 none does.
    strict = TriageBundle(demo_bundle.router, {c: None for c in demo_bundle.classes}, 0.9)
    lax = TriageBundle(demo_bundle.router, dict.fromkeys(demo_bundle.classes, 0.0), 0.9)
    assert all(r.needs_review for r in strict.route(test[INPUT].head(10)))
    assert not any(r.needs_review for r in lax.route(test[INPUT].head(10)))


def test_a_confidence_exactly_at_the_threshold_is_routed_like_auto_routed_says(demo_bundle: TriageBundle) -> None:
    classes = demo_bundle.classes
    first, second = classes[0], classes[1]
    thresholds: dict[str, float | None] = dict.fromkeys(classes)
    thresholds[first] = 0.6
    bundle = TriageBundle(demo_bundle.router, thresholds, 0.9)
    rest = (1 - 0.6) / (len(classes) - 1)
    proba = np.array([
        [0.6] + [rest] * (len(classes) - 1),  # exactly at the threshold: routed
        [0.59] + [0.41 / (len(classes) - 1)] * (len(classes) - 1),  # just below: review
        [0.05, 0.95] + [0.0] * (len(classes) - 2),  # a department without a threshold: review
    ])
    routes = bundle.routes_from_proba(proba)
    assert [r.label for r in routes] == [first, first, second]
    assert [r.needs_review for r in routes] == [False, True, True]
    assert [not r.needs_review for r in routes] == auto_routed(proba, classes, thresholds).tolist()


def test_route_of_an_empty_frame_is_empty(demo_bundle: TriageBundle) -> None:
    assert demo_bundle.route(pd.DataFrame(columns=INPUT)) == []


def test_routes_frame_has_one_row_per_case_with_the_route_columns(demo_bundle: TriageBundle, demo_split) -> None:
    _, test = demo_split
    cases = test[INPUT].head(7).reset_index(drop=True)
    frame = routes_frame(demo_bundle, cases)
    assert list(frame.columns) == [
        "department", "department_confidence", "needs_review", "out_of_taxonomy",
        "top1_department", "top1_probability", "top2_department", "top2_probability",
        "top3_department", "top3_probability",
    ]
    assert len(frame) == 7
    routes = demo_bundle.route(cases)
    assert frame["department"].tolist() == [r.label for r in routes]
    assert frame["needs_review"].tolist() == [r.needs_review for r in routes]
    assert frame["top2_department"].tolist() == [r.top[1][0] for r in routes]
    assert (frame["top1_department"] == frame["department"]).all()


# -- persistence -----------------------------------------------------------------------------------


def test_bundle_save_load_round_trip_gives_identical_routes(
    demo_bundle: TriageBundle, demo_split, tmp_path: Path
) -> None:
    _, test = demo_split
    path = demo_bundle.save(tmp_path / "model")
    assert path == tmp_path / "model" / BUNDLE_FILE and path.is_file()
    for where in (tmp_path / "model", path):  # the directory or the file itself
        loaded = TriageBundle.load(where)
        assert loaded.classes == demo_bundle.classes
        assert loaded.thresholds == demo_bundle.thresholds
        assert loaded.metadata == demo_bundle.metadata
        assert loaded.route(test[INPUT]) == demo_bundle.route(test[INPUT])


def test_saved_bundle_does_not_carry_the_compiled_scorer(demo_bundle: TriageBundle, tmp_path: Path) -> None:
    demo_bundle.route_one("路灯坏了", "")  # builds the compiled scorer cache
    assert "_compiled_cache" in demo_bundle.__dict__
    assert "_compiled_cache" not in pickle.loads(pickle.dumps(demo_bundle)).__dict__


def test_loading_a_pickle_that_is_not_a_bundle_raises_type_error(tmp_path: Path) -> None:
    path = tmp_path / BUNDLE_FILE
    path.write_bytes(zstandard.ZstdCompressor().compress(pickle.dumps({"router": "not a bundle"})))
    with pytest.raises(TypeError, match=r"holds a dict, not a TriageBundle") as info:
        TriageBundle.load(tmp_path)
    assert str(path) in str(info.value)


def test_a_bundle_saved_gzip_compressed_before_zstd_still_loads(
    demo_bundle: TriageBundle, demo_split, tmp_path: Path
) -> None:
    _, test = demo_split
    (tmp_path / GZIP_BUNDLE_FILE).write_bytes(gzip.compress(pickle.dumps(demo_bundle, protocol=5), compresslevel=3))
    loaded = TriageBundle.load(tmp_path)
    assert loaded.route(test[INPUT]) == demo_bundle.route(test[INPUT])
    assert load_model(str(tmp_path)).bundle.classes == demo_bundle.classes
    # Saved again, a folder holding both names reads the newer file.
    loaded.metadata = {**loaded.metadata, "resaved": True}
    assert loaded.save(tmp_path) == tmp_path / BUNDLE_FILE
    assert TriageBundle.load(tmp_path).metadata["resaved"] is True


def test_a_file_that_is_neither_zstd_nor_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / BUNDLE_FILE
    path.write_bytes(b"a half-copied model")
    with pytest.raises(BundleFormatError, match="not a saved model bundle") as info:
        TriageBundle.load(tmp_path)
    assert str(path) in str(info.value)


def test_load_model_from_a_local_bundle_directory(demo_bundle_dir: Path, demo_bundle: TriageBundle) -> None:
    loaded = load_model(str(demo_bundle_dir))
    assert loaded.name == "grievance-triage"
    assert loaded.version == "test"
    case = ("健身房关门了", "预付卡退不了")
    assert loaded.bundle.route_one(*case) == demo_bundle.route_one(*case)


def test_load_model_from_a_directory_without_a_bundle_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=BUNDLE_FILE) as info:
        load_model(str(tmp_path))
    assert str(tmp_path) in str(info.value)
