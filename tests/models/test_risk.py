"""Tests for models.risk: partial risk labels, bands, behaviour on made-up texts, reasons, determinism and
pickling. The model is trained on the shipped demo data; every text written here is made up."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from features.risk_cues import FEATURE_NAMES, cue_features, load_lexicon, match_cues, rule_risk_level
from features.text import case_text
from models.bundle import TriageBundle
from models.risk import (
    BURST_COLUMNS,
    LEVEL_ORDER,
    LEVELS,
    TEXT_SCORE_FEATURES,
    RiskModel,
    RiskParams,
    TextScorer,
    choose_bands,
    feature_text,
    levels_from_proba,
    risk_features,
    situational_feature,
    weak_labels,
)
from models.risk.features import _cue_block, _doc
from models.risk.model import FORM_FEATURES

SEED = 7
GREEN_TITLE = "请问新生儿落户需要准备哪些材料？"
GREEN_BODY = "孩子上个月刚出生，想了解一下落户的办理流程，需要带哪些证件，能不能网上办理。"
GAS_LEAK = "另外，小区地下室燃气泄漏，味道很重"
_HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def partial_cases(demo_cases: pd.DataFrame) -> pd.DataFrame:
    """The demo cases with every second risk level removed: those rows must fall back to weak labels."""
    cases = demo_cases.copy()
    cases.loc[cases.index[1::2], "risk_level"] = None
    return cases


@pytest.fixture(scope="module")
def router_inputs(demo_bundle: TriageBundle, demo_cases: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    return demo_bundle.predict_proba(demo_cases[["title", "body"]]), demo_bundle.classes


@pytest.fixture(scope="module")
def model(partial_cases: pd.DataFrame, router_inputs: tuple[np.ndarray, list[str]]) -> RiskModel:
    proba, classes = router_inputs
    return RiskModel().fit(partial_cases, router_proba=proba, router_classes=classes, seed=SEED)


def level_of(model: RiskModel, title: str, body: str, bundle: TriageBundle) -> tuple[str, object]:
    proba = bundle.predict_proba([(title, body)])[0]
    result = model.predict_one(title, body, proba, bundle.classes)
    return result.level, result


# -- labels ------------------------------------------------------------------------------------------


def test_weak_labels_fill_missing_levels_from_the_cue_rules_and_flag_them(partial_cases: pd.DataFrame) -> None:
    labels, is_weak = weak_labels(partial_cases)
    missing = partial_cases["risk_level"].isna().to_numpy()
    assert missing.sum() == len(partial_cases) // 2
    np.testing.assert_array_equal(is_weak, missing)
    given = partial_cases["risk_level"].to_numpy(dtype=object)
    assert list(labels[~missing]) == list(given[~missing])
    rules = [rule_risk_level(case_text(t, b))[0] for t, b in zip(partial_cases["title"], partial_cases["body"],
                                                                 strict=True)]
    assert list(labels[missing]) == list(np.asarray(rules, dtype=object)[missing])


def test_weak_labels_reject_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown risk level 'orange'"):
        weak_labels(pd.DataFrame({"title": ["路灯坏了"], "body": [""], "risk_level": ["orange"]}))


def test_training_with_partial_labels_counts_weak_rows_and_chooses_bands_on_real_ones(
    model: RiskModel, partial_cases: pd.DataFrame
) -> None:
    summary = model.training_summary_
    n_missing = int(partial_cases["risk_level"].isna().sum())
    assert summary["n_weak"] == n_missing
    assert summary["n_real"] == len(partial_cases) - n_missing
    # Bands come from out-of-fold predictions of the rows with real labels, and reach the targets there.
    report = model.band_report_
    assert report["source"] == "real-oof"
    assert report["n_rows"] == len(partial_cases) - n_missing
    # Red recall reaches its target unless the precision floor stopped the band, which the report says.
    if report["red_limited_by_precision"]:
        assert report["oof_red_precision"] >= model.resolved_params.red_precision_floor
    else:
        assert report["oof_red_recall"] >= model.resolved_params.red_recall_target
    assert report["oof_at_least_yellow_recall"] >= model.resolved_params.yellow_recall_target
    assert 0.0 < model.bands_["red"] <= 1.0 and 0.0 < model.bands_["yellow"] <= 1.0
    json.dumps(model.describe(), ensure_ascii=False)  # loggable as it is


def test_training_needs_every_level(demo_cases: pd.DataFrame) -> None:
    only_green = demo_cases[demo_cases["risk_level"] == "green"]
    with pytest.raises(ValueError, match=r"lack level\(s\) \['red', 'yellow'\]"):
        RiskModel().fit(only_green, seed=SEED)


# -- bands -------------------------------------------------------------------------------------------


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """10 red cases with P(red) 0.95, 0.85, ..., 0.05; 5 yellow; 5 green."""
    y = np.array(["red"] * 10 + ["yellow"] * 5 + ["green"] * 5, dtype=object)
    p_red = np.r_[np.linspace(0.95, 0.05, 10), [0.02] * 5, [0.01] * 5]
    p_yellow = np.r_[[0.0] * 10, [0.9, 0.7, 0.5, 0.3, 0.1], [0.05, 0.04, 0.03, 0.02, 0.01]]
    return y, np.c_[p_red, p_yellow, 1 - p_red - p_yellow]


def test_choose_bands_meets_the_recall_target_and_lowers_the_band_while_precision_holds() -> None:
    y, proba = hand_made()
    bands = choose_bands(y, proba, red_recall_target=0.8, yellow_recall_target=0.6)
    # No yellow or green case scores above 0.05 on P(red): catching all 10 reds costs no precision,
    # so the band goes below the 8th-largest score (0.25) that the recall target alone would allow.
    assert bands["red"] == pytest.approx(0.05)
    at_least = proba[y != "green", 0] + proba[y != "green", 1]
    assert (at_least >= bands["yellow"]).mean() >= 0.6
    # The yellow band weighs greens too (mean F1 of both sides): it stops at 0.12, catching 14 of the 15
    # red-or-yellow cases and no green, rather than go to 0.05 for the last one and take two greens with it.
    score = proba[:, 0] + proba[:, 1]
    flagged = score >= bands["yellow"]
    assert bands["yellow"] == pytest.approx(0.12)
    assert (y[flagged] != "green").sum() == 14 and (y[flagged] == "green").sum() == 0


def test_choose_bands_stops_lowering_where_false_alarms_begin() -> None:
    y = np.array(["red"] * 10 + ["green"] * 10, dtype=object)
    p_red = np.r_[np.linspace(0.9, 0.5, 9), [0.02], np.linspace(0.12, 0.03, 10)]
    proba = np.c_[p_red, np.zeros(20), 1 - p_red]
    bands = choose_bands(y, proba, red_recall_target=0.8, yellow_recall_target=0.5)
    # Recall 0.8 allows any band up to 0.55; 0.5 catches a 9th red with no false alarm (best F2); below
    # it only greens come until the last red at 0.02.
    assert bands["red"] == pytest.approx(0.5)
    red = p_red[y == "red"]
    assert (red >= bands["red"]).mean() >= 0.8


def test_choose_bands_with_full_recall_takes_the_lowest_red_score_and_rejects_no_red() -> None:
    y, proba = hand_made()
    assert choose_bands(y, proba, 1.0, 1.0)["red"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="no red case"):
        choose_bands(y[y != "red"], proba[y != "red"])


def test_a_precision_floor_trades_red_recall_for_fewer_false_alarms() -> None:
    # 10 reds; 9 score high, one looks green (0.02) among 10 greens scoring 0.03 to 0.12.
    y = np.array(["red"] * 10 + ["green"] * 10, dtype=object)
    p_red = np.r_[np.linspace(0.9, 0.5, 9), [0.02], np.linspace(0.12, 0.03, 10)]
    proba = np.c_[p_red, np.zeros(20), 1 - p_red]
    recall_only = choose_bands(y, proba, red_recall_target=1.0, yellow_recall_target=0.5)
    assert recall_only["red"] == pytest.approx(0.02)  # every case is red: precision 0.5
    floored = choose_bands(y, proba, red_recall_target=1.0, yellow_recall_target=0.5, red_precision_floor=0.6)
    # The lowest threshold with precision >= 0.6: 9 reds and up to 6 greens flagged (9/15 = 0.6).
    flagged = p_red >= floored["red"]
    assert (y[flagged] == "red").mean() >= 0.6
    assert floored["red"] == pytest.approx(np.sort(p_red)[::-1][14])
    # A floor the recall threshold already meets changes nothing.
    assert choose_bands(y, proba, 0.9, 0.5, red_precision_floor=0.6)["red"] == pytest.approx(0.5)


def test_levels_from_proba_red_before_yellow_before_green() -> None:
    proba = np.array([[0.30, 0.10, 0.60], [0.10, 0.50, 0.40], [0.05, 0.05, 0.90]])
    assert list(levels_from_proba(proba, {"red": 0.25, "yellow": 0.5})) == ["red", "yellow", "green"]


def test_rebanded_rechooses_on_the_stored_out_of_fold_predictions(model: RiskModel) -> None:
    labels, oof = model.band_oof_
    lower = model.rebanded(red_recall_target=0.8)
    assert lower.bands_ == choose_bands(
        labels, oof, 0.8, model.resolved_params.yellow_recall_target, model.resolved_params.red_precision_floor
    )
    assert lower.band_report_["red_precision_floor"] == model.resolved_params.red_precision_floor
    assert lower.bands_["red"] >= model.bands_["red"]
    assert model.resolved_params.red_recall_target == RiskParams().red_recall_target  # the original is untouched


# -- behaviour and reasons ---------------------------------------------------------------------------


def test_the_safety_floor_keeps_a_red_cue_case_out_of_green(model: RiskModel, demo_bundle: TriageBundle) -> None:
    # Bands nothing can reach: the model alone would call every case green.
    blind = model.rebanded(bands={"red": 1.01, "yellow": 1.01})
    level, result = level_of(blind, GREEN_TITLE, GREEN_BODY + GAS_LEAK, demo_bundle)
    assert level == "yellow"
    rule = [r for r in result.reasons if r.kind == "rule"]
    # First the red criterion its cue meets, then the floor that kept it out of green.
    assert result.reasons[0].kind == "criterion" and result.reasons[0].criterion == "red-1"
    assert len(rule) == 1 and rule[0].criterion == "red-1" and result.reasons[1] is rule[0]
    assert level_of(blind, GREEN_TITLE, GREEN_BODY, demo_bundle)[0] == "green"
    # Batch prediction applies the same floor.
    batch = blind.predict([(GREEN_TITLE, GREEN_BODY + GAS_LEAK), (GREEN_TITLE, GREEN_BODY)],
                          demo_bundle.predict_proba([(GREEN_TITLE, GREEN_BODY + GAS_LEAK), (GREEN_TITLE, GREEN_BODY)]),
                          demo_bundle.classes)
    assert [r.level for r in batch] == ["yellow", "green"]
    off = model.rebanded(bands={"red": 1.01, "yellow": 1.01})
    off.params = off.resolved_params.model_copy(update={"red_cue_floor": False})
    assert level_of(off, GREEN_TITLE, GREEN_BODY + GAS_LEAK, demo_bundle)[0] == "green"


def test_adding_a_gas_leak_to_a_green_case_raises_its_level(model: RiskModel, demo_bundle: TriageBundle) -> None:
    before, _ = level_of(model, GREEN_TITLE, GREEN_BODY, demo_bundle)
    after, result = level_of(model, GREEN_TITLE, GREEN_BODY + GAS_LEAK, demo_bundle)
    assert before == "green"
    assert LEVEL_ORDER[after] > LEVEL_ORDER[before]
    assert after == "red"
    assert result.probabilities["red"] > model.predict_one(GREEN_TITLE, GREEN_BODY).probabilities["red"]


@pytest.fixture(scope="module")
def gas_leak_case(model: RiskModel, demo_bundle: TriageBundle) -> tuple[str, object, str]:
    """(level, result, case_text) of a green question with a gas leak added."""
    body = GREEN_BODY + GAS_LEAK
    level, result = level_of(model, GREEN_TITLE, body, demo_bundle)
    return level, result, case_text(GREEN_TITLE, body)


def test_reasons_give_the_cue_phrase_with_offsets_and_model_reasons_in_chinese(
    model: RiskModel, gas_leak_case: tuple[str, object, str]
) -> None:
    _, result, text = gas_leak_case
    cues = [r for r in result.reasons if r.kind == "cue"]
    gas = [r for r in cues if r.text == "燃气泄漏"]
    assert gas and gas[0].criterion == "red-1" and gas[0].category == "gas_leak"
    assert text[gas[0].start:gas[0].end] == "燃气泄漏"
    assert all(text[r.start:r.end] == r.text for r in cues)
    lexicon_cues = [r for r in cues if r.category != "learned"]
    assert sorted((r.start, r.end) for r in lexicon_cues) == sorted((m.start, m.end) for m in match_cues(text))
    learned = [r for r in result.reasons if r.kind == "model"]
    assert 1 <= len(learned) <= model.resolved_params.max_model_reasons
    assert all(_HAN.search(r.text) and r.feature in model.feature_names_ and r.weight > 0 for r in learned)
    assert [r.weight for r in learned] == sorted((r.weight for r in learned), reverse=True)
    assert "rule_level" in {r.feature for r in learned}  # the red rule fired: the model leans on it
    payload = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    assert payload["level"] == "red" and set(payload["probabilities"]) == set(LEVELS)
    assert sum(payload["probabilities"].values()) == pytest.approx(1.0)


def test_a_red_case_opens_with_its_rubric_criterion_and_the_phrases_that_show_it(
    gas_leak_case: tuple[str, object, str],
) -> None:
    level, result, text = gas_leak_case
    assert level == "red"
    head = result.reasons[0]
    assert head.kind == "criterion" and head.criterion == "red-1"
    assert head.text.startswith("符合红色标准1「危及生命或人身安全」：文中") and "“燃气泄漏”" in head.text
    phrases = []
    for reason in result.reasons[1:]:
        if reason.kind != "cue" or reason.criterion != "red-1":
            break
        phrases.append(reason)
    assert phrases and phrases[0].text == "燃气泄漏"
    assert all(text[r.start:r.end] == r.text for r in phrases)
    quoted = list(dict.fromkeys(r.text for r in phrases))[:3]
    assert head.text.endswith("、".join(f"“{q}”" for q in quoted))


def test_form_features_never_stand_as_reasons_for_red_or_yellow(model: RiskModel, demo_cases: pd.DataFrame,
                                                                  demo_bundle: TriageBundle) -> None:
    cases = demo_cases.head(120)
    results = model.predict(cases, demo_bundle.predict_proba(cases[["title", "body"]]), demo_bundle.classes)
    flagged = [r for r in results if r.level != "green"]
    assert flagged and any(r.level == "green" for r in results)
    for result in flagged:
        assert result.reasons[0].kind == "criterion"
        assert result.reasons[0].criterion.startswith(result.level) or result.reasons[1].kind == "rule"
        for reason in (r for r in result.reasons if r.kind == "model"):
            assert reason.feature not in FORM_FEATURES and not reason.feature.startswith("dept_p:")
            assert reason.value > 0 and "不像" not in reason.text
    # Green cases may still be explained by the form of the message.
    assert situational_feature("cue_red_1", 1.0) and not situational_feature("cue_red_1", 0.0)
    assert not situational_feature("title_chars", 30.0) and not situational_feature("text_p:green", 0.9)
    assert situational_feature("text_p:red", 0.45) and not situational_feature("text_c:red-4", 0.06)


def test_weak_rows_are_left_out_once_there_are_enough_real_labels(
    partial_cases: pd.DataFrame, router_inputs: tuple[np.ndarray, list[str]]
) -> None:
    proba, classes = router_inputs
    n_real = int(partial_cases["risk_level"].notna().sum())
    few = RiskModel(RiskParams(weak_until_real=n_real, text_score=False)).fit(
        partial_cases, router_proba=proba, router_classes=classes, seed=SEED)
    assert few.weak_left_out_ == len(partial_cases) - n_real
    assert few.training_summary_["n_weak"] == 0 and few.training_summary_["n_rows"] == n_real
    kept = RiskModel(RiskParams(weak_until_real=n_real + 1, text_score=False)).fit(
        partial_cases, router_proba=proba, router_classes=classes, seed=SEED)
    assert kept.weak_left_out_ == 0 and kept.training_summary_["n_weak"] == len(partial_cases) - n_real


def test_feature_text_names_features_in_words() -> None:
    assert feature_text("cue_red_1", 1.0).startswith("提到危及人身安全的情况")
    assert feature_text("cue_red_1", 0.0) == "未提到危及人身安全的情况"
    assert feature_text("dept_p:城乡建设", 0.9) == "属于城乡建设类问题（可能性90%）"
    assert feature_text("burst_people", 12) == "近期多人反映同一问题（12人）"
    assert feature_text("cue_cat:gas_leak", 2) == "提到燃气泄漏或燃气味"


# -- features ----------------------------------------------------------------------------------------


def test_no_feature_describes_the_reporter(model: RiskModel, demo_cases: pd.DataFrame) -> None:
    assert not [n for n in model.feature_names_ if "reporter" in n.lower()]
    cases = demo_cases.head(40)
    other = cases.assign(reporter_id=[f"U{i}" for i in range(len(cases))])
    np.testing.assert_array_equal(model.features(cases), model.features(other))
    np.testing.assert_array_equal(model.features(cases), model.features(cases.drop(columns="reporter_id")))


def test_feature_blocks_cues_router_and_bursts(demo_cases: pd.DataFrame) -> None:
    cases = demo_cases.head(30).reset_index(drop=True)
    X, names = risk_features(cases)
    assert X.dtype == np.float32 and X.shape == (30, len(names))
    assert names[: len(FEATURE_NAMES)] == list(FEATURE_NAMES)
    for i in range(3):
        row = cue_features(case_text(cases.at[i, "title"], cases.at[i, "body"]))
        np.testing.assert_allclose(X[i, : len(FEATURE_NAMES)], [row[n] for n in FEATURE_NAMES], rtol=1e-6)
    burst_cols = [n for n in names if n.startswith("burst_")]
    assert len(burst_cols) == len(BURST_COLUMNS)
    assert not X[:, [names.index(n) for n in burst_cols]].any()  # no burst columns: zeros
    bursts = cases.assign(burst_cases=5, burst_reporters=4, burst_recent_cases=3, burst_growth=1.5, burst_votes=None)
    Xb, _ = risk_features(bursts)
    np.testing.assert_array_equal(Xb[:, [names.index(n) for n in burst_cols]][0], [5, 4, 3, 1.5, 0])
    proba = np.tile([0.7, 0.3], (30, 1))
    Xr, names_r = risk_features(cases, proba, ["环境保护", "城乡建设"])
    assert Xr[0, names_r.index("dept_p:城乡建设")] == pytest.approx(0.3)
    assert [n for n in names_r if n.startswith("dept_p:")] == ["dept_p:环境保护", "dept_p:城乡建设"]


def test_one_pass_cue_block_equals_cue_features_and_match_cues(demo_cases: pd.DataFrame) -> None:
    lexicon = load_lexicon()
    for title, body in zip(demo_cases["title"], demo_cases["body"], strict=True):
        text = case_text(title, body)
        feats, matches = _cue_block(text, lexicon)
        assert feats == cue_features(text)
        assert matches == match_cues(text)


def test_router_columns_are_matched_by_name(model: RiskModel, router_inputs: tuple[np.ndarray, list[str]],
                                            demo_cases: pd.DataFrame) -> None:
    proba, classes = router_inputs
    cases = demo_cases.head(20)
    reordered = list(reversed(classes))
    a = model.predict_proba(cases, proba[:20], classes)
    b = model.predict_proba(cases, proba[:20, ::-1], reordered)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="columns"):
        model.predict_proba(cases, proba[:20, :3], classes)


def test_predict_one_matches_batch_predict(model: RiskModel, router_inputs: tuple[np.ndarray, list[str]],
                                           demo_cases: pd.DataFrame) -> None:
    proba, classes = router_inputs
    cases = demo_cases.head(25).reset_index(drop=True).assign(burst_cases=3, burst_reporters=3, burst_growth=2.0)
    batch = model.predict(cases, proba[:25], classes)
    for i in range(25):
        burst = {c: cases.at[i, c] for c in BURST_COLUMNS if c in cases.columns}
        one = model.predict_one(cases.at[i, "title"], cases.at[i, "body"], proba[i], classes, burst)
        assert one.to_dict() == batch[i].to_dict()


def test_a_changed_lexicon_version_is_refused(model: RiskModel) -> None:
    stale = pickle.loads(pickle.dumps(model))
    stale.lexicon_version_ = "0-old"
    with pytest.raises(ValueError, match="risk lexicon version '0-old'"):
        stale.predict_one(GREEN_TITLE, GREEN_BODY)


# -- determinism and persistence ---------------------------------------------------------------------


def test_same_data_params_and_seed_give_identical_probabilities(
    partial_cases: pd.DataFrame, router_inputs: tuple[np.ndarray, list[str]], model: RiskModel
) -> None:
    proba, classes = router_inputs
    again = RiskModel().fit(partial_cases, router_proba=proba, router_classes=classes, seed=SEED)
    assert again.bands_ == model.bands_
    np.testing.assert_array_equal(
        again.predict_proba(partial_cases, proba, classes), model.predict_proba(partial_cases, proba, classes)
    )


def test_pickle_round_trip_gives_identical_predictions(
    model: RiskModel, router_inputs: tuple[np.ndarray, list[str]], demo_cases: pd.DataFrame
) -> None:
    proba, classes = router_inputs
    model.predict_one(GREEN_TITLE, GREEN_BODY)  # warm the booster cache, which must not be pickled
    loaded = pickle.loads(pickle.dumps(model))
    assert "_booster_cache" not in loaded.__dict__
    cases = demo_cases.head(60)
    assert [r.to_dict() for r in loaded.predict(cases, proba[:60], classes)] == [
        r.to_dict() for r in model.predict(cases, proba[:60], classes)
    ]
    assert loaded.predict_one(GREEN_TITLE, GREEN_BODY + GAS_LEAK).to_dict() == model.predict_one(
        GREEN_TITLE, GREEN_BODY + GAS_LEAK
    ).to_dict()


# -- stacked text score ------------------------------------------------------------------------------


def test_text_score_features_are_present_named_and_worded(model: RiskModel, demo_cases: pd.DataFrame) -> None:
    assert model.resolved_params.text_score and isinstance(model.text_scorer_, TextScorer)
    assert list(TEXT_SCORE_FEATURES) == ["text_p:red", "text_p:yellow", "text_p:green"]
    stacked = [f"text_c:{c}" for c in model.text_criterion_features_]
    assert stacked and all(c.startswith("text_c:red-") for c in stacked)  # the demo data names red criteria
    assert model.feature_names_[-3 - len(stacked):] == [*TEXT_SCORE_FEATURES, *stacked]
    assert model.describe()["text_score"] is True
    X = model.features(demo_cases.head(30))
    text_p = X[:, -3 - len(stacked):len(X[0]) - len(stacked)].astype(np.float64)
    text_c = X[:, -len(stacked):].astype(np.float64)
    assert ((text_c >= 0) & (text_c <= 1)).all() and (text_c.sum(axis=1) <= 1 + 1e-6).all()
    assert feature_text(stacked[0], 0.5).startswith("文本与「")
    np.testing.assert_allclose(text_p.sum(axis=1), 1.0, rtol=1e-5)
    assert (text_p > 0).all() and (text_p < 1).all()
    assert feature_text("text_p:red", 0.83) == "文本整体与红色案例相似（可能性83%）"
    assert feature_text("text_p:green", 0.05) == "文本整体不像绿色案例（可能性5%）"


def test_text_scorer_scores_like_sklearn_and_is_deterministic(demo_cases: pd.DataFrame) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from models.risk.text_score import text_grams

    docs = [_doc(case_text(t, b)) for t, b in zip(demo_cases["title"], demo_cases["body"], strict=True)]
    y = np.array([LEVELS.index(v) for v in demo_cases["risk_level"]])
    w = np.where(np.arange(len(y)) % 2 == 0, 1.0, 0.3)
    scorer = TextScorer(4.0).fit(docs, y, w)
    vec = TfidfVectorizer(analyzer=text_grams, lowercase=False, min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000).fit(vec.fit_transform(docs), y,
                                                                                 sample_weight=w)
    np.testing.assert_allclose(scorer.predict_proba_docs(docs[:50]), clf.predict_proba(vec.transform(docs[:50])),
                               rtol=1e-9, atol=1e-12)
    again = TextScorer(4.0).fit(docs, y, w)
    np.testing.assert_array_equal(again.predict_proba_docs(docs), scorer.predict_proba_docs(docs))


def test_text_score_can_be_switched_off(partial_cases: pd.DataFrame) -> None:
    plain = RiskModel(RiskParams(text_score=False)).fit(partial_cases, seed=SEED)
    assert plain.text_scorer_ is None
    assert not [n for n in plain.feature_names_ if n.startswith("text_p:")]
    assert plain.predict_one(GREEN_TITLE, GREEN_BODY).level == plain.predict([(GREEN_TITLE, GREEN_BODY)])[0].level


def test_fit_features_with_text_score_needs_the_texts(partial_cases: pd.DataFrame) -> None:
    X, names = risk_features(partial_cases)
    labels, weak = weak_labels(partial_cases)
    with pytest.raises(ValueError, match="texts"):
        RiskModel().fit_features(X, names, labels, is_weak=weak, seed=SEED)
