"""The review queries on SQLite and PostgreSQL: queue order and membership, case detail, agreement figures.

Cases and predictions are constructed directly (no model), so every expected figure is known by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store import (
    AgreementOverall,
    CaseInput,
    DepartmentAgreement,
    LevelAgreement,
    PredictionInput,
    PredictionRecord,
    Store,
    WeekAgreement,
    upgrade_database,
)
from store.review_queries import iso_week

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade_database(db_url)
    with Store.from_url(db_url) as opened:
        yield opened


def record(
    store: Store,
    case_id: str,
    *,
    minutes: int = 0,
    department: str = "城乡建设",
    level: str | None = "green",
    needs_review: bool = False,
    body: str = "小区门口道路破损，请尽快修复。",
    hot_issue_id: str | None = None,
    rescore: bool = False,
) -> PredictionRecord:
    """Store a case received `minutes` after T0 and a prediction for it."""
    case = CaseInput(
        case_id=case_id,
        title=f"案件{case_id}",
        body=body,
        created_at=T0 - timedelta(hours=1),
        reporter_id=f"R-{case_id}",
        channel="12345热线",
        received_at=T0 + timedelta(minutes=minutes),
    )
    prediction = PredictionInput(
        model_name="grievance-triage",
        model_version="1",
        department=department,
        department_confidence=0.6 if needs_review else 0.95,
        needs_review=needs_review,
        top=[{"label": department, "probability": 0.95}],
        risk_level=level,
        risk_probabilities=None if level is None else {level: 0.9},
        reasons={"risk": [], "hot_issue": None},
        hot_issue_id=hot_issue_id,
    )
    return store.record_case_and_prediction(case, prediction, rescore=rescore)


def queue_ids(store: Store, **filters: Any) -> list[str]:
    return [item.case_id for item in store.review_queue(**filters)]


# -- the queue --------------------------------------------------------------------------------------
def test_queue_is_red_then_yellow_then_low_confidence_then_the_rest_oldest_first(store: Store) -> None:
    record(store, "other-old", minutes=0, level="green")
    record(store, "yellow-new", minutes=5, level="yellow")
    record(store, "red-new", minutes=6, level="red", needs_review=True)
    record(store, "review-new", minutes=7, level="green", needs_review=True)
    record(store, "yellow-old", minutes=1, level="yellow")
    record(store, "review-nolevel", minutes=2, level=None, needs_review=True)
    record(store, "red-old", minutes=3, level="red")
    record(store, "other-nolevel", minutes=4, level=None)

    items = store.review_queue()
    assert [i.case_id for i in items] == [
        "red-old", "red-new", "yellow-old", "yellow-new", "review-nolevel", "review-new", "other-old", "other-nolevel",
    ]
    assert [i.priority for i in items] == ["red", "red", "yellow", "yellow", "review", "review", "other", "other"]
    assert store.review_queue_counts() == {"red": 2, "yellow": 2, "review": 2, "other": 2}
    first = items[0]
    assert first.received_at == T0 + timedelta(minutes=3)
    assert first.case_created_at == T0 - timedelta(hours=1)
    assert first.title == "案件red-old" and first.body_preview == "小区门口道路破损，请尽快修复。"
    assert (first.department, first.risk_level, first.needs_review) == ("城乡建设", "red", False)
    # Paging walks the same order.
    assert queue_ids(store, limit=3, offset=2) == ["yellow-old", "yellow-new", "review-nolevel"]


def test_body_preview_is_the_first_120_characters(store: Store) -> None:
    record(store, "long", body="长" * 119 + "尾" + "不" * 500)
    (item,) = store.review_queue()
    assert item.body_preview == "长" * 119 + "尾"


def test_a_reviewed_case_leaves_the_queue_and_a_changed_text_brings_it_back(store: Store) -> None:
    first = record(store, "A", level="red")
    record(store, "B", minutes=1, level="yellow")
    store.add_review("A", first.id, "reviewer-li", decided_department="城乡建设", decided_level="red")
    assert queue_ids(store) == ["B"]
    assert store.review_queue_counts()["red"] == 0

    changed = record(store, "A", minutes=10, level="yellow", body="燃气味已经没有了，但楼道还是很脏。")
    items = store.review_queue()
    assert [(i.case_id, i.prediction_id) for i in items] == [("B", items[0].prediction_id), ("A", changed.id)]
    assert items[1].received_at == T0 + timedelta(minutes=10)  # the new text's arrival

    # Reviewing the superseded prediction again does not take the case out: only the latest counts.
    store.add_review("A", first.id, "reviewer-li", decided_department="城乡建设", decided_level="red")
    assert queue_ids(store) == ["B", "A"]
    store.add_review("A", changed.id, "reviewer-li", decided_department="城乡建设", decided_level="yellow")
    assert queue_ids(store) == ["B"]


def test_a_rescore_after_a_review_asks_for_a_new_review(store: Store) -> None:
    first = record(store, "A")
    store.add_review("A", first.id, "reviewer-li", decided_department="城乡建设", decided_level="green")
    assert queue_ids(store) == []
    again = record(store, "A", rescore=True)
    assert [i.prediction_id for i in store.review_queue()] == [again.id]


def test_queue_filters_by_level_department_and_time(store: Store) -> None:
    record(store, "r1", minutes=0, level="red", department="城乡建设")
    record(store, "r2", minutes=60, level="red", department="环境保护")
    record(store, "y1", minutes=120, level="yellow", department="环境保护")
    record(store, "g1", minutes=180, level="green", department="环境保护", needs_review=True)

    assert queue_ids(store, level="red") == ["r1", "r2"]
    assert queue_ids(store, department="环境保护") == ["r2", "y1", "g1"]
    assert queue_ids(store, level="red", department="环境保护") == ["r2"]
    assert queue_ids(store, since=T0 + timedelta(minutes=60)) == ["r2", "y1", "g1"]  # since is inclusive
    assert queue_ids(store, until=T0 + timedelta(minutes=120)) == ["r1", "r2"]  # until is exclusive
    assert queue_ids(store, since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=150)) == ["r2", "y1"]
    assert store.review_queue_counts(department="环境保护") == {"red": 1, "yellow": 1, "review": 1, "other": 0}
    assert store.review_queue_counts(level="green") == {"red": 0, "yellow": 0, "review": 1, "other": 0}
    naive = (T0 + timedelta(minutes=60)).replace(tzinfo=None)  # naive datetimes are UTC
    assert queue_ids(store, since=naive) == ["r2", "y1", "g1"]


# -- case detail ------------------------------------------------------------------------------------
def test_case_detail_holds_versions_predictions_reviews_and_its_burst(store: Store) -> None:
    assert store.case_detail("nope") is None
    record(store, "mate-1", hot_issue_id="hot-mate-1")
    first = record(store, "A", minutes=1, level="yellow", hot_issue_id="hot-mate-1")
    store.add_review("A", first.id, "reviewer-li", decided_department="城乡建设", decided_level="red", note="有燃气")
    second = record(store, "A", minutes=5, body="又闻到了燃气味。", level="red", hot_issue_id="hot-mate-1")
    record(store, "mate-2", minutes=6, hot_issue_id="hot-mate-1")
    for member in ("mate-1", "A", "mate-2"):
        store.add_hotspot_member("hot-mate-1", member, T0 + timedelta(minutes=len(member)), f"R-{member}")
    store.add_alert("hot-mate-1:yellow", "hot-mate-1", "yellow", T0 + timedelta(minutes=5), {"cases": 3})
    store.add_alert("hot-mate-1:red", "hot-mate-1", "red", T0 + timedelta(minutes=9), {"cases": 6})
    store.add_alert("hot-other:red", "hot-other", "red", T0 + timedelta(minutes=20), {"cases": 6})

    detail = store.case_detail("A")
    assert detail is not None
    assert [v.body for v in detail.versions] == ["小区门口道路破损，请尽快修复。", "又闻到了燃气味。"]
    assert [p.id for p in detail.predictions] == [first.id, second.id]
    assert detail.latest_prediction == second
    assert detail.latest_version == detail.versions[1]
    assert [r.decided_level for r in detail.reviews] == ["red"]
    assert detail.latest_review is not None and detail.latest_review.note == "有燃气"
    assert detail.pending  # the review was of the superseded prediction
    assert detail.alert is not None and detail.alert.alert_id == "hot-mate-1:red"
    assert detail.burst_case_ids == ["mate-1", "mate-2"]  # the others, in the order they were observed


def test_case_detail_without_burst_has_no_alert(store: Store) -> None:
    record(store, "solo")
    detail = store.case_detail("solo")
    assert detail is not None and detail.alert is None and detail.burst_case_ids == []
    assert detail.latest_review is None and detail.pending


def test_latest_version_is_the_text_the_latest_prediction_scored(store: Store) -> None:
    record(store, "A", body="第一版")
    record(store, "A", body="第二版", minutes=1)
    record(store, "A", body="第一版", minutes=2)  # the first text comes back: scored again
    detail = store.case_detail("A")
    assert detail is not None and detail.latest_version is not None
    assert [v.body for v in detail.versions] == ["第一版", "第二版"]
    assert detail.latest_version.body == "第一版"


def test_known_departments_are_those_predictions_named(store: Store) -> None:
    assert store.known_departments() == []
    record(store, "A", department="环境保护")
    record(store, "B", department="城乡建设")
    record(store, "C", department="环境保护")
    assert store.known_departments() == sorted(["城乡建设", "环境保护"])


# -- agreement --------------------------------------------------------------------------------------
WEEK_47 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # Friday of ISO week 47
WEEK_47_END = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # Sunday night, still week 47
WEEK_48 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # Tuesday of ISO week 48
WEEK_48_START = datetime(2026, 11, 23, tzinfo=UTC)


def review_at(
    store: Store, monkeypatch: pytest.MonkeyPatch, when: datetime, case_id: str, prediction_id: int,
    department: str | None, level: str | None, reviewer: str = "reviewer-li",
) -> None:
    monkeypatch.setattr("store.repository.utcnow", lambda: when)
    store.add_review(case_id, prediction_id, reviewer, decided_department=department, decided_level=level)


@pytest.fixture
def reviewed(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Five reviewed cases with hand-computed agreement (see the test below)."""
    c1 = record(store, "C1", department="城乡建设", level="yellow")
    c2 = record(store, "C2", department="环境保护", level="green")
    c3 = record(store, "C3", department="城乡建设", level="red")
    c4 = record(store, "C4", department="交通运输", level="yellow")
    record(store, "C5", department="交通运输", level="green")  # never reviewed
    review_at(store, monkeypatch, WEEK_47, "C1", c1.id, "城乡建设", "yellow")  # agrees on both
    review_at(store, monkeypatch, WEEK_47_END, "C2", c2.id, "城乡建设", "red", "reviewer-wang")  # a missed red
    review_at(store, monkeypatch, WEEK_48, "C3", c3.id, "城乡建设", "yellow")  # department only
    review_at(store, monkeypatch, WEEK_47, "C4", c4.id, "交通运输", "green")  # superseded by the next review
    review_at(store, monkeypatch, WEEK_48, "C4", c4.id, None, None)  # empty decision: the model's value stands
    return store


def test_agreement_over_each_cases_latest_review(reviewed: Store) -> None:
    report = reviewed.agreement_report()
    assert report.overall == AgreementOverall(
        reviewed=4, agreed_department=3, agreed_level=2, department_agreement=0.75, level_agreement=0.5
    )
    assert report.by_department == [
        DepartmentAgreement("城乡建设", reviewed=2, agreed=2, rate=1.0),
        DepartmentAgreement("交通运输", reviewed=1, agreed=1, rate=1.0),
        DepartmentAgreement("环境保护", reviewed=1, agreed=0, rate=0.0),
    ]
    assert report.by_level == [
        LevelAgreement("red", reviewed=1, agreed=0, rate=0.0),
        LevelAgreement("yellow", reviewed=2, agreed=2, rate=1.0),
        LevelAgreement("green", reviewed=1, agreed=0, rate=0.0),
    ]
    assert report.level_confusion == {"red": {"yellow": 1}, "yellow": {"yellow": 2}, "green": {"red": 1}}
    assert report.by_week == [
        WeekAgreement("2026-W47", reviewed=2, department_agreement=0.5, level_agreement=0.5),
        WeekAgreement("2026-W48", reviewed=2, department_agreement=1.0, level_agreement=0.5),
    ]
    (missed,) = report.missed_red
    assert (missed.case_id, missed.predicted_level, missed.reviewer, missed.reviewed_at) == (
        "C2", "green", "reviewer-wang", WEEK_47_END
    )


def test_agreement_window_is_on_review_time(reviewed: Store) -> None:
    later = reviewed.agreement_report(since=WEEK_48_START)
    assert later.overall.reviewed == 2  # C3, and C4's week-48 review
    assert later.missed_red == []
    assert [w.week for w in later.by_week] == ["2026-W48"]

    earlier = reviewed.agreement_report(until=WEEK_48_START)
    assert earlier.overall.reviewed == 3  # C1, C2, and C4 as its week-47 review decided (green: disagrees)
    assert (earlier.overall.agreed_department, earlier.overall.agreed_level) == (2, 1)
    assert [m.case_id for m in earlier.missed_red] == ["C2"]


def test_agreement_on_no_reviews_has_no_rates(store: Store) -> None:
    record(store, "A")
    report = store.agreement_report()
    assert report.overall == AgreementOverall(0, 0, 0, None, None)
    assert report.by_department == report.by_level == report.by_week == report.missed_red == []


def test_iso_weeks_follow_the_calendar_in_utc() -> None:
    assert iso_week(datetime(2026, 11, 22, 23, 59, tzinfo=UTC)) == "2026-W47"
    assert iso_week(datetime(2026, 11, 23, 0, 0, tzinfo=UTC)) == "2026-W48"
    assert iso_week(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"
