"""Warnings, their events and the outbox in the store, on SQLite and PostgreSQL, with an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from models.warning_policy import WarningPolicy, load_warning_policy
from store import Store, upgrade_database
from store import warnings as warning_module
from store.outbox import DEAD, DELIVERED, PENDING, Outbox
from store.tables import EarlyWarning, OutboxEvent, WarningEvent
from store.warning_queries import WarningFilters
from store.warning_records import WarningDraft
from store.warnings import IllegalTransition, WarningBook, WarningNotFound

T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    upgrade_database(db_url)
    with Store.from_url(db_url) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def book(store: Store, clock: Clock) -> WarningBook:
    return WarningBook(store.engine, load_warning_policy(), clock)


@pytest.fixture
def outbox(store: Store, clock: Clock) -> Outbox:
    return Outbox(store.engine, clock)


def draft(
    case_id: str = "C1", level: str = "red", department: str = "城乡建设", district: str = "南湖区"
) -> WarningDraft:
    reasons = [{"kind": "criterion", "criterion": "red-1", "text": "燃气泄漏"}]
    return WarningDraft("case", case_id, level, department, district, reasons, case_id=case_id)


def outbox_types(store: Store) -> list[str]:
    with store.engine.connect() as c:
        return list(c.execute(select(OutboxEvent.event_type).order_by(OutboxEvent.id)).scalars())


def test_issue_numbers_per_year_deadlines_and_outbox_in_one_go(book: WarningBook, store: Store, clock: Clock) -> None:
    first, issued = book.issue(draft("C1"))
    assert issued and first.number == "预警〔2026〕0001号" and first.status == "issued"
    assert first.acknowledge_due == T0 + timedelta(hours=2) and first.resolve_due == T0 + timedelta(hours=24)
    again, issued_again = book.issue(draft("C1", level="yellow"))
    assert not issued_again and again.id == first.id and again.level == "red"  # one warning per source
    second, _ = book.issue(draft("C2", level="yellow"))
    assert second.number == "预警〔2026〕0002号"
    assert second.acknowledge_due == T0 + timedelta(days=1) and second.resolve_due == T0 + timedelta(days=3)
    # 2026-12-31 17:00 UTC is 2027-01-01 01:00 in Beijing: the number's year is the policy zone's.
    clock.now = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    third, _ = book.issue(draft("C3"))
    assert third.number == "预警〔2027〕0001号"
    assert outbox_types(store) == ["warning.issued"] * 3
    detail = book.get(first.id)
    assert [e.kind for e in detail.events] == ["issued"]


def test_a_chunk_writes_the_events_and_outbox_rows_that_issuing_one_by_one_writes(book: WarningBook,
                                                                                  store: Store) -> None:
    chunk = book.issue_many([(draft("C1"), [("alert.raised", {"alert": {"id": "A1"}})]), (draft("C2"), [])])
    single, _ = book.issue(draft("C3"))
    with store.engine.connect() as c:
        events = c.execute(select(WarningEvent.warning_id, WarningEvent.kind, WarningEvent.actor, WarningEvent.detail)
                           .order_by(WarningEvent.id)).all()
        outbox = c.execute(select(OutboxEvent.event_type, OutboxEvent.payload, OutboxEvent.state)
                           .order_by(OutboxEvent.id)).all()
    ids = [chunk[0].id, chunk[1].id, single.id]
    assert [(e.warning_id, e.kind) for e in events] == [(i, "issued") for i in ids]
    assert events[0].detail == events[2].detail == {"level": "red", "department": "城乡建设", "district": "南湖区"}
    assert len({e.actor for e in events}) == 1
    assert [o.event_type for o in outbox] == ["warning.issued", "alert.raised", "warning.issued", "warning.issued"]
    assert [o.payload["warning"]["id"] for o in outbox if o.event_type == "warning.issued"] == ids
    assert outbox[1].payload["alert"] == {"id": "A1"} and {o.state for o in outbox} == {PENDING}
    assert len({o.payload["event_id"] for o in outbox}) == 4
    assert [e.kind for e in book.get(chunk[1].id).events] == ["issued"]


@pytest.mark.parametrize("issuing", ["one", "a chunk"])
def test_a_failed_outbox_write_leaves_no_warning(
    book: WarningBook, store: Store, monkeypatch: pytest.MonkeyPatch, issuing: str
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(warning_module, "add_events", broken)
    with pytest.raises(RuntimeError):
        if issuing == "one":
            book.issue(draft("C1"))
        else:
            book.issue_many([(draft("C1"), []), (draft("C2"), [])])
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(EarlyWarning)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(WarningEvent)).scalar_one() == 0


def test_lifecycle_and_illegal_transitions(book: WarningBook, store: Store, clock: Clock) -> None:
    w, _ = book.issue(draft("C1"))
    with pytest.raises(WarningNotFound):
        book.acknowledge(w.id, "dept-b", department="环境保护")  # another department's warning
    clock.move(minutes=30)
    acked = book.acknowledge(w.id, "dept-a", department="城乡建设", note="已签收")
    assert acked.status == "acknowledged" and acked.acknowledged_at == T0 + timedelta(minutes=30)
    with pytest.raises(IllegalTransition, match="only an issued warning can be acknowledged"):
        book.acknowledge(w.id, "dept-a")
    with pytest.raises(ValueError, match="note is required"):
        book.resolve(w.id, "dept-a", note="  ")
    resolved = book.resolve(w.id, "dept-a", note="燃气公司已关阀检修", department="城乡建设")
    assert resolved.status == "resolved" and resolved.closed_at is not None
    with pytest.raises(IllegalTransition, match="already resolved"):
        book.withdraw(w.id, "reviewer-li", note="误报")

    other, _ = book.issue(draft("C2"))
    book.withdraw(other.id, "reviewer-li", note="重复工单")
    with pytest.raises(IllegalTransition, match="withdrawn warning cannot be resolved"):
        book.resolve(other.id, "dept-a", note="办结")
    kinds = [e.kind for e in book.get(w.id).events]
    assert kinds == ["issued", "acknowledged", "resolved"]
    assert book.get(w.id).events[-1].note == "燃气公司已关阀检修"
    assert outbox_types(store) == ["warning.issued", "warning.resolved", "warning.issued"]


def test_review_changes_update_the_warning_and_never_delete_it(book: WarningBook, store: Store, clock: Clock) -> None:
    w, _ = book.issue(draft("C1", level="yellow"))
    clock.move(hours=1)
    updated, changed = book.review_update("C1", "reviewer-li", level="red", department="环境保护", note="燃气泄漏")
    assert changed and updated is not None and updated.id == w.id
    assert (updated.level, updated.department) == ("red", "环境保护")
    # New deadlines for the new level, counted from the issue time.
    assert updated.acknowledge_due == T0 + timedelta(hours=2) and updated.resolve_due == T0 + timedelta(hours=24)
    event = book.get(w.id).events[-1]
    assert event.kind == "updated"
    assert event.detail == {"level": ["yellow", "red"], "department": ["城乡建设", "环境保护"]}
    same, changed_again = book.review_update("C1", "reviewer-li", level="red", department=None, note=None)
    assert not changed_again and same is not None and same.id == w.id
    # A case without a warning gets one when the reviewer makes it red; a green decision issues none.
    assert book.review_update("C9", "reviewer-li", level="green", department=None, note="x",
                              draft=draft("C9", level="green")) == (None, False)
    raised, made = book.review_update("C8", "reviewer-li", level="red", department=None, note="x",
                                      draft=draft("C8", level="red"))
    assert made and raised is not None and raised.case_id == "C8"
    assert outbox_types(store) == ["warning.issued", "warning.updated", "warning.issued"]


def test_yellow_issues_only_when_the_policy_says_so() -> None:
    assert WarningPolicy().issues("yellow") and WarningPolicy().issues("red")
    quiet = WarningPolicy(issue_yellow=False)
    assert not quiet.issues("yellow") and quiet.issues("red") and not quiet.issues("green")


def test_overdue_sweep_escalates_once_per_deadline(book: WarningBook, store: Store, clock: Clock) -> None:
    w, _ = book.issue(draft("C1"))
    late, _ = book.issue(draft("C2"))
    assert book.sweep_overdue() == []
    clock.move(hours=2, seconds=1)  # past the 2 h acknowledge deadline of both
    book.acknowledge(late.id, "dept-a")  # acknowledged late: no notice for a deadline it has met by now
    escalated = book.sweep_overdue()
    assert [e.id for e in escalated] == [w.id] and escalated[0].escalation_level == 1
    assert book.sweep_overdue() == []  # idempotent: the same deadline is not escalated twice
    notice = book.get(w.id).events[-1]
    assert notice.kind == "supervised" and notice.detail["deadline"] == "acknowledge"
    assert notice.detail["notice"] == "督办〔2026〕0001-1号"
    clock.move(hours=22)  # past the 24 h resolve deadline
    escalated = book.sweep_overdue()
    assert sorted((e.id, e.escalation_level) for e in escalated) == [(w.id, 2), (late.id, 1)]
    assert book.sweep_overdue() == []
    assert outbox_types(store).count("warning.escalated") == 3
    items, total = book.list(WarningFilters(overdue=True))
    assert total == 2 and {i.id for i in items} == {w.id, late.id}
    book.resolve(w.id, "dept-a", note="已处置")
    assert book.list(WarningFilters(overdue=True))[1] == 1


def test_list_filters_and_summary(book: WarningBook, clock: Clock) -> None:
    book.issue(draft("C1", department="城乡建设", district="南湖区"))
    clock.move(hours=1)
    b, _ = book.issue(draft("C2", level="yellow", department="环境保护", district="东港区"))
    clock.move(hours=1)
    book.issue(draft("C3", department="城乡建设", district="unknown"))
    book.withdraw(b.id, "reviewer-li", note="误报")
    items, total = book.list(WarningFilters(department="城乡建设"), limit=1)
    assert total == 2 and len(items) == 1 and items[0].case_id == "C3"  # newest first, paginated
    assert book.list(WarningFilters(status="withdrawn"))[1] == 1
    assert book.list(WarningFilters(since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=90)))[1] == 1
    clock.move(hours=1)  # C1 is 3 h old: past its 2 h acknowledge deadline; C3 1 h old
    s = book.summary()
    assert s.total == 3 and s.by_level == {"red": 2, "yellow": 1}
    assert s.by_status["issued"] == 2 and s.by_status["withdrawn"] == 1 and s.open == 2
    assert s.overdue == 1 and s.overdue_by_department == {"城乡建设": 1}
    assert s.by_district == {"unknown": 1, "东港区": 1, "南湖区": 1}
    assert s.district_level[("南湖区", "red")] == 1


def test_outbox_claim_lease_backoff_dead_and_requeue(store: Store, outbox: Outbox, clock: Clock) -> None:
    first = outbox.add("alert.raised", {"alert": {"id": "A1"}})
    second = outbox.add("alert.raised", {"alert": {"id": "A2"}})
    taken = outbox.claim(limit=1)
    assert [t.event_id for t in taken] == [first]
    assert taken[0].payload["event_id"] == first and taken[0].payload["type"] == "alert.raised"
    assert [t.event_id for t in outbox.claim(limit=10)] == [second]
    assert outbox.claim() == []  # both leased
    assert outbox.failed(taken[0], "connection refused", [], max_attempts=3, base=10, cap=600) == PENDING
    assert outbox.claim() == []  # backing off 10 s
    clock.move(seconds=10)
    again = outbox.claim()
    assert [t.event_id for t in again] == [first] and again[0].attempts == 1
    assert outbox.failed(again[0], "503", [], max_attempts=3, base=10, cap=600) == PENDING
    clock.move(seconds=19)
    assert outbox.claim() == []  # the second wait is 20 s
    clock.move(seconds=1)
    third = outbox.claim()
    assert outbox.failed(third[0], "503", [], max_attempts=3, base=10, cap=600) == DEAD
    clock.move(hours=1)
    assert [t.event_id for t in outbox.claim()] == [second]  # the lease of the unfinished claim ran out
    assert outbox.counts() == {PENDING: 1, DELIVERED: 0, DEAD: 1}
    assert outbox.requeue(second) is None  # not dead
    requeued = outbox.requeue(first)
    assert requeued is not None and requeued.state == PENDING and requeued.attempts == 0
    retaken = [t for t in outbox.claim() if t.event_id == first]
    assert outbox.delivered(retaken[0], ["ops"])
    assert outbox.get(first).state == DELIVERED and outbox.get(first).delivered_to == ["ops"]
    assert not outbox.delivered(retaken[0], ["ops"])  # the claim is spent: nothing changes twice


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` on n threads released at the same moment; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)

    def go(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def test_racing_writers_get_one_warning_per_source_unique_numbers_and_one_acknowledgement(
    book: WarningBook, store: Store
) -> None:
    same = run_together(6, lambda i: book.issue(draft("SAME")))
    assert len({w.id for w, _ in same}) == 1 and sum(new for _, new in same) == 1
    distinct = run_together(6, lambda i: book.issue(draft(f"C{i}"))[0].number)
    assert len(set(distinct)) == 6
    target = same[0][0].id
    outcomes = run_together(6, lambda i: book.acknowledge(target, f"dept-{i}"))
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, IllegalTransition) for o in outcomes if isinstance(o, Exception))
    assert [e.kind for e in book.get(target).events] == ["issued", "acknowledged"]


def test_racing_workers_claim_disjoint_events(outbox: Outbox) -> None:
    for i in range(30):
        outbox.add("alert.raised", {"alert": {"id": f"A{i}"}})
    claimed = run_together(5, lambda i: [r.event_id for r in outbox.claim(limit=10)])
    flat = [event_id for batch in claimed for event_id in batch]
    assert len(flat) == len(set(flat)) == 30


def test_racing_sweeps_escalate_each_deadline_once(book: WarningBook, clock: Clock, store: Store) -> None:
    for i in range(5):
        book.issue(draft(f"C{i}"))
    clock.move(hours=3)
    escalated = run_together(4, lambda i: [w.id for w in book.sweep_overdue()])
    flat = [wid for batch in escalated for wid in batch]
    assert sorted(flat) == sorted(set(flat)) and len(flat) == 5
    assert outbox_types(store).count("warning.escalated") == 5


def test_racing_rounds_issue_each_source_once_between_them(book: WarningBook, store: Store, clock: Clock) -> None:
    """Replicas' rounds read the same new predictions: between them each source gets one warning, with
    unique numbers and one `warning.issued` event each, and no round waits on or fails for another's."""
    other = WarningBook(store.engine, load_warning_policy(), clock)
    chunk = [(draft(f"C{j}", level="red" if j % 2 else "yellow"), []) for j in range(24)]
    rounds = run_together(4, lambda i: (book if i % 2 else other).issue_many(chunk))
    assert not [r for r in rounds if isinstance(r, Exception)]
    issued = [w for r in rounds for w in r]
    assert sorted(w.source_id for w in issued) == sorted(f"C{j}" for j in range(24))
    assert len({w.number for w in issued}) == 24
    assert outbox_types(store).count("warning.issued") == 24
    stored = {w.source_id: w for w in (book.for_case(f"C{j}") for j in range(24)) if w is not None}
    assert {w.source_id: w.id for w in issued} == {k: w.id for k, w in stored.items()}
    assert all(w.level == ("red" if int(w.case_id[1:]) % 2 else "yellow") for w in issued)
