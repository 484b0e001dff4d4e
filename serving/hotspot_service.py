"""The live hot-issue detector of a serving process, kept in step with the store and with other replicas.

Every case a replica observes is appended to the hot-issue feed (`store.hotspot_feed`), and each
replica replays the feed in order before observing a case of its own, all under one database lock: so
any number of replicas behind a load balancer hold one detector state between them, raise each alert
once under one id, and answer a case with the same hot issue whichever replica took it. The members
and alerts of a replica's own cases commit in the same transaction as its feed rows; cases another
replica appended are only replayed here (their writes are that replica's). Replay outside the lock
catches up first, so the locked part covers only the few cases appended meanwhile.

The detector's snapshot (with the feed position it includes) is saved every `snapshot_every` cases of
this replica, at most once per `snapshot_seconds`, and at shutdown (about 0.6 MB after 2,000 cases). Each
renders the whole state, which grows with the window's cases: at 250 requests/s a count alone had each
worker render one every few seconds, and the rendering thread's CPU stretched the requests' tail. On
start-up the detector is restored from the latest snapshot and the feed after it; a store from before the
feed existed replays its cases table instead, once. Snapshots are copied under the process lock and
written by a thread of their own.

In "local" mode (one process owns the state: no feed) a group's cases are observed and their members,
alerts and answers stored in one transaction the same way (`Store.hotspot_local_intake`).

While the database is unreachable (the app's `serving.spool.DurableWriter` says so), a replica observes
on its own: members, alerts and snapshots go through `sink`, which spools them, and the cases are kept
in memory. With the database back, they are appended to the feed and the replica rebuilds its state from
the latest snapshot and the feed, rejoining the others. Alerts raised alone during the outage keep their
ids; the shared state may raise the same burst's alert again under another id (see README, Deployment).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from features.prepared import PreparedCase
from models.hotspots import Assignment, CaseEvent, CaseTerms, HotspotConfig, HotspotDetector, case_terms, terms_key
from serving.deadline import StoreHung
from serving.spool import OUTAGE_ERRORS
from store import CaseInput, PendingPrediction, PredictionRecord, SnapshotRecord, Store
from store.hotspot_feed import FEED_SEQ_KEY, DetectorWrites, FeedEntry, FeedIntake, snapshot_seq
from store.repository import SavePredictions

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Feed rows read per query while catching up (bounds memory after a long absence).
CATCH_UP_PAGE = 2000
#: Longest wait between the follower's rounds after failures (it doubles from `follow`'s interval).
FOLLOW_BACKOFF_SECONDS = 10.0
#: Most cases one feed transaction takes from the queue (group commit): bounds how long it holds the lock.
MAX_GROUP = 32


class HotspotSink(Protocol):
    """Where members, alerts and snapshots are written (`Store` or `serving.spool.DurableWriter`)."""

    def add_hotspot_member(
        self, burst_id: str, case_id: str, observed_at: datetime, reporter_id: str | None = None
    ) -> Any: ...

    def add_alert(
        self, alert_id: str, burst_id: str, level: str, raised_at: datetime, payload: Mapping[str, Any]
    ) -> Any: ...

    def save_snapshot(self, payload: Mapping[str, Any], *, detector_version: str | None = None) -> Any: ...


class Answer(Protocol):
    """Makes the answer to a case once the detector has placed it (`observe_and_answer`): the prediction
    to store in the feed's transaction, or None to store it itself after that transaction."""

    def __call__(self, assignment: Assignment, level: str | None) -> PendingPrediction | None: ...


class GroupedAnswer:
    """An `Answer` of a kind that makes several cases' answers in one call (`many`): the feed's transaction
    makes the answers of its whole group while it holds the lock every replica waits for, and the triage
    service's answers run the risk model once for the group instead of once per case (`answer_group`)."""

    def __call__(self, assignment: Assignment, level: str | None) -> PendingPrediction | None:
        return type(self).many([(self, assignment, level)])[0]

    @classmethod
    def many(cls, items: Sequence[tuple[Any, Assignment, str | None]]) -> list[PendingPrediction | None]:
        """``answer(assignment, level)`` for each (answer, assignment, level), answers of this kind."""
        raise NotImplementedError


def answer_group(items: Sequence[tuple[Answer, Assignment, str | None]]) -> list[PendingPrediction | None]:
    """Each ``answer(assignment, level)``, in order; `GroupedAnswer`s with one call per kind."""
    made: list[PendingPrediction | None] = [None] * len(items)
    kinds: dict[type[GroupedAnswer], list[int]] = {}
    for k, (answer, assignment, level) in enumerate(items):
        if isinstance(answer, GroupedAnswer):
            kinds.setdefault(type(answer), []).append(k)
        else:
            made[k] = answer(assignment, level)
    for kind, positions in kinds.items():
        for k, one in zip(positions, kind.many([items[k] for k in positions]), strict=True):
            made[k] = one
    return made


#: What observing a case gives: its assignment, its burst's level after it, and its stored prediction (None
#: when the caller is to store it: an outage, or no `answer`). A resubmission the intake's transaction found
#: stored (`Observation.skip_if_stored`) is not observed: (None, None, that prediction).
Outcome = tuple[Assignment | None, str | None, PredictionRecord | None]


@dataclass(frozen=True)
class Observation:
    """A case to observe (`HotspotService.observe_many`); see `observe_and_answer` for the fields."""

    case_id: str
    created_at: datetime | None
    title: str
    body: str
    reporter_id: str | None
    votes: int | None = None
    channel: str | None = None
    answer: Answer | None = None
    prepared: PreparedCase | None = None
    #: When the store already holds this case's prediction for this text, answer with it and leave the case
    #: unobserved (see `FeedIntake.skip_if_stored`); the caller then needs no lookup of its own.
    skip_if_stored: bool = False


#: The clock of the snapshots' interval (tests move it instead of waiting).
_monotonic = time.monotonic


class HotspotService:
    def __init__(
        self,
        store: Store,
        detector: HotspotDetector,
        *,
        snapshot_every: int = 1000,
        snapshot_seconds: float = 0.0,
        sink: HotspotSink | None = None,
        feed_seq: int = 0,
        shared: bool = True,
    ) -> None:
        self.store = store
        self.shared = shared  # False: one process owns the state (no feed; see the module docstring)
        self.sink: HotspotSink = sink if sink is not None else store
        self.detector = detector
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.feed_seq = feed_seq  # the last feed row this detector has observed
        self._since_snapshot = 0
        self._last_snapshot = _monotonic()  # when the last snapshot began (start-up: the state is fresh)
        self._lock = threading.Lock()
        self._saver: threading.Thread | None = None
        self._pending: list[FeedIntake] = []  # observed alone while the database was unreachable
        self._queue: deque[_Waiter] = deque()  # shared mode: cases waiting for the next feed transaction
        self._diverged = False  # state no longer equals "snapshot + feed": rebuild at the next intake
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        #: Told the level of each alert this replica raised, once it is stored or spooled (the metrics).
        self.on_alert: Callable[[str], None] | None = None
        #: Told the cases, seconds and seconds holding the feed lock of each feed transaction this replica
        #: committed (the metrics).
        self.on_group: Callable[[int, float, float | None], None] | None = None

    @classmethod
    def restore(
        cls,
        store: Store,
        config: HotspotConfig,
        *,
        snapshot_every: int = 1000,
        snapshot_seconds: float = 0.0,
        sink: HotspotSink | None = None,
        shared: bool = True,
    ) -> HotspotService:
        """The latest snapshot plus what came after it: the feed's rows after the snapshot's position, or
        (a snapshot from local mode or from before the feed) the cases stored after it."""
        snap = store.latest_snapshot(config.version)
        detector = HotspotDetector.from_snapshot(snap.payload) if snap else HotspotDetector(config)
        if detector.rewind_clock(datetime.now(UTC).replace(tzinfo=None)):
            logger.warning("hot-issue snapshot %s had its clock ahead of now; brought back", snap.id if snap else "-")
        service = cls(store, detector, snapshot_every=snapshot_every, snapshot_seconds=snapshot_seconds, sink=sink,
                      shared=shared)
        replayed = 0
        if shared and snap is not None and FEED_SEQ_KEY in snap.payload:
            service.feed_seq = snapshot_seq(snap)
        elif shared and snap is None:
            # A new store, or none saved yet: the cases from before the feed existed (an upgraded store),
            # then the whole feed.
            replayed = service._replay_cases(None, before_row=store.hotspot_feed_first_case_row())
        else:
            replayed = service._replay_cases(snap.created_at if snap else None)
            # Local mode keeps no feed position; switching to shared mode starts after the feed's current
            # end (its rows were observed before that snapshot, which a clean shutdown writes).
            service.feed_seq = store.hotspot_feed_last_seq() if shared else 0
        if shared:
            with service._lock:
                replayed += service._catch_up()
        logger.info(
            "hot-issue detector (%s) restored from %s plus %d replayed cases (%d live bursts, feed at %d)",
            "shared feed" if shared else "local", f"snapshot {snap.id}" if snap else "an empty state", replayed,
            detector.burst_count, service.feed_seq,
        )
        return service

    def _replay_cases(self, since: datetime | None, before_row: int | None = None) -> int:
        """Observe stored cases in the order they were stored (the intake stream before the feed)."""
        cases = self.store.cases_received_since(since, before_row=before_row)
        for case in cases:
            observed = _window_time(case.created_at, _naive_utc(case.received_at))
            self.detector.observe(CaseEvent(case.case_id, observed, case.title, case.body, case.reporter_id, None))
        return len(cases)

    def observe(
        self,
        case_id: str,
        created_at: datetime | None,
        title: str,
        body: str,
        reporter_id: str | None,
        votes: int | None = None,
        *,
        channel: str | None = None,
    ) -> tuple[Assignment, str | None]:
        """Assign a case to a burst; returns the assignment and the burst's alert level after it."""
        assignment, level, _ = self.observe_and_answer(
            case_id, created_at, title, body, reporter_id, votes, channel=channel
        )
        assert assignment is not None  # only a `skip_if_stored` case goes unobserved
        return assignment, level

    def observe_and_answer(
        self,
        case_id: str,
        created_at: datetime | None,
        title: str,
        body: str,
        reporter_id: str | None,
        votes: int | None = None,
        *,
        channel: str | None = None,
        answer: Answer | None = None,
        prepared: PreparedCase | None = None,
    ) -> Outcome:
        """`observe`, and on the shared feed `answer(assignment, level)` in the feed's transaction: the
        prediction it returns commits with the case's feed row, members and alerts, so a process killed in
        between leaves neither. The third value is that committed prediction; None when
        the case was observed without the feed (local mode, an outage): the caller stores its answer.
        ``prepared``: the case as the router prepared it; its tokens are reused (`models.hotspots.case_terms`)."""
        (outcome,) = self.observe_many([
            Observation(case_id, created_at, title, body, reporter_id, votes, channel, answer, prepared)
        ])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def observe_many(self, cases: Sequence[Observation]) -> list[Outcome | BaseException]:
        """`observe_and_answer` for several cases in order (a batch request); each case's outcome, or the
        error it met. On the shared feed they queue together, so they take a feed transaction per
        `MAX_GROUP` cases instead of one each."""
        now = datetime.now(UTC).replace(tzinfo=None)
        config = self.detector.config
        key = terms_key(config) if self.shared else None  # local mode keeps no feed: no terms to store
        waiters = []
        for case in cases:
            observed = _window_time(case.created_at, now)
            # jieba before any lock: under the database lock observing a case is arithmetic only. On the
            # shared feed the terms go with the case, so other replicas replay it without segmenting it.
            terms = case_terms(case.title, case.body, config, case.prepared)
            intake = FeedIntake(
                CaseInput(case.case_id, case.title, case.body, case.created_at, case.reporter_id, case.channel),
                observed.replace(tzinfo=UTC), case.votes, None if key is None else terms.to_json(key),
                skip_if_stored=case.skip_if_stored,
            )
            waiters.append(_Waiter(intake, terms, case.answer))
        # Group commit: the request that gets the lock takes every case queued meanwhile into one
        # transaction (one lock round, one commit); the others find their answer done when they get it.
        self._queue.extend(waiters)
        with self._lock:
            while not all(waiter.done for waiter in waiters):
                self._serve([self._queue.popleft() for _ in range(min(len(self._queue), MAX_GROUP))])
        return [waiter.error if waiter.error is not None else waiter.result for waiter in waiters]  # type: ignore[misc]

    def _serve(self, batch: list[_Waiter]) -> None:
        """Observe a group of queued cases (under the lock) in one transaction (through the feed, or in
        local mode straight into the store), or alone while the database is unreachable. A group that fails
        for any other reason is served again case by case, so one case's error is answered to that case's
        request only. In local mode, cases with no answer to store are observed in memory (their members and
        alerts go through the sink): a transaction would hold SQLite's write lock for nothing."""
        in_transaction = self.shared or any(waiter.answer is not None for waiter in batch)
        if in_transaction and not self._shared_unavailable():
            try:
                if self.shared:
                    self._observe_shared(batch)
                else:
                    self._observe_local(batch)
            except OUTAGE_ERRORS as exc:
                self._diverged = True
                mark_down = getattr(self.sink, "mark_down", None)
                if mark_down is None:  # no spool to fall back on: the routes answer 503
                    for waiter in batch:
                        waiter.fail(exc)
                    return
                mark_down(exc)
            except BaseException as exc:
                if len(batch) == 1:
                    batch[0].fail(exc)
                else:
                    for waiter in batch:
                        self._serve([waiter])
                return
            else:
                for _ in batch:
                    self._count_for_snapshot()
                return
        for waiter in batch:
            try:
                if not self.shared:
                    self._rebuild_local_if_due()
                waiter.finish((*self._observe_alone(waiter.intake, waiter.terms, remember=self.shared), None))
            except BaseException as exc:
                waiter.fail(exc)
            self._count_for_snapshot()

    @property
    def waiting(self) -> int:
        """Cases queued for the next feed transaction (each request's case waits here while another
        request's transaction holds the feed)."""
        return len(self._queue)

    def sync(self) -> int:
        """Replay what other replicas appended since this one last observed; returns how many cases.

        The rows are read outside the lock, within the database deadline (`DurableWriter.bounded`), and only
        replayed under it: a read that hangs (a database that stops answering without closing connections)
        held the lock every request waits for, and every triage request hung with it, past its deadline."""
        replayed = 0
        while True:
            with self._lock:
                if self._diverged or self._shared_unavailable():
                    return replayed
                after = self.feed_seq
            page = self._bounded(self.store.hotspot_feed_after, after, CATCH_UP_PAGE)
            with self._lock:
                # An intake (or a rebuild) may have replayed some of these meanwhile: `_replay` skips them. A
                # position moved back (a rebuild from an older snapshot) would leave rows between it and
                # `after` unread: the next round reads from there instead.
                if self._diverged or self.feed_seq < after:
                    return replayed
                replayed += self._replay(page)
            if len(page) < CATCH_UP_PAGE:
                return replayed

    def follow(self, every: float = 0.5) -> None:
        """Catch up on other replicas' cases in the background, every `every` seconds: a request then
        reads nothing before its locked intake, which replays only what arrived since the last round. After
        a failed round it waits twice as long each time (at most `FOLLOW_BACKOFF_SECONDS`): each round that
        meets a hung database leaves a deadline thread waiting on it."""
        if self._follower is not None or not self.shared:
            return

        def loop() -> None:
            wait = every
            while not self._stop.wait(wait):
                try:
                    self.sync()
                except Exception as exc:  # the next intake catches up instead; its error is the one to see
                    wait = min(max(every, FOLLOW_BACKOFF_SECONDS), 2 * wait)
                    logger.warning("hot-issue feed catch-up failed (%s); retried in %.1f s", type(exc).__name__, wait)
                else:
                    wait = every

        self._follower = threading.Thread(target=loop, name="hotspot-feed-follower", daemon=True)
        self._follower.start()

    # -- shared state (the feed) ------------------------------------------------------------------
    def _shared_unavailable(self) -> bool:
        # The database being down, not a backlog still replaying, sends the detector off the shared feed.
        return bool(getattr(self.sink, "down", False))

    def _catch_up(self, read: Callable[..., Any] | None = None) -> int:
        """Replay feed rows appended by others since `feed_seq` (no database lock needed; see the feed), read
        through ``read`` (`_bounded` on the request path; start-up reads directly)."""
        read = read or _direct
        replayed = 0
        while True:
            page = read(self.store.hotspot_feed_after, self.feed_seq, CATCH_UP_PAGE)
            replayed += self._replay(page)
            if len(page) < CATCH_UP_PAGE:  # the feed's end when read: no empty read after it (under the lock)
                return replayed

    def _replay(self, page: Sequence[FeedEntry]) -> int:
        """Observe the rows of ``page`` after `feed_seq`, in order; rows at or before it were replayed."""
        key = terms_key(self.detector.config)
        replayed = 0
        for entry in page:
            if entry.seq <= self.feed_seq:
                continue
            self.detector.observe(_event(entry), CaseTerms.from_json(entry.terms, key))
            self.feed_seq = entry.seq
            replayed += 1
        return replayed

    def _bounded(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args)`` within the sink's database deadline, when it has one (`DurableWriter.bounded`)."""
        bounded = getattr(self.sink, "bounded", None) or _direct
        return bounded(function, *args, **kwargs)

    def _rebuild_from_feed(self, bounded: Callable[..., Any]) -> None:
        """A new detector from the latest snapshot and the feed after it, read without the feed lock.

        Done inside the locked intake, as before, the first case per worker after an outage waited
        8.5-12 s with every replica's intake held behind it. Reads go through `bounded` (the deadline);
        the detector is swapped only once it is whole."""
        config = self.detector.config
        snap = bounded(self.store.latest_snapshot, config.version)
        detector = HotspotDetector.from_snapshot(snap.payload) if snap else HotspotDetector(config)
        seq = snapshot_seq(snap)
        key = terms_key(config)
        while page := bounded(self.store.hotspot_feed_after, seq, CATCH_UP_PAGE):
            for entry in page:
                detector.observe(_event(entry), CaseTerms.from_json(entry.terms, key))
                seq = entry.seq
        self.detector, self.feed_seq = detector, seq

    def _observe_shared(self, batch: list[_Waiter]) -> None:
        """Append `batch` (after any cases observed alone during an outage) to the feed in one locked
        transaction, replay what others appended, and store each case's answer in that transaction;
        finishes each waiter with its assignment, burst level and stored prediction."""
        bounded = self._bounded
        if self._diverged:
            # Cases observed alone stay in `_pending`: the locked intake appends and replays them.
            self._rebuild_from_feed(bounded)
        elif self._follower is None:
            self._catch_up(bounded)  # keeps the locked part short; a follower thread does this in the background
        pending = len(self._pending)
        intakes = [*self._pending, *(waiter.intake for waiter in batch)]
        own = _OwnCases(batch)

        def apply(
            snapshot: SnapshotRecord | None, entries: list[FeedEntry], seqs: Sequence[int | None]
        ) -> DetectorWrites:
            own.clear()
            index_of = {seq: k - pending for k, seq in enumerate(seqs) if k >= pending and seq is not None}
            mine = set(seqs)
            key = terms_key(self.detector.config)
            for entry in entries:
                k = index_of.get(entry.seq)
                terms = CaseTerms.from_json(entry.terms, key) if k is None else batch[k].terms
                assignment = self.detector.observe(_event(entry), terms)
                self.feed_seq = entry.seq
                if entry.seq in mine:  # this replica's: its batch's, or one it observed during an outage
                    self._record_own(own, k, assignment, entry.case_id, _naive_utc(entry.observed_at),
                                     entry.reporter_id)
            return own.writes

        # Rebuilt above if need be, outside the lock: the locked part replays the last few rows only.
        began = time.perf_counter()
        held: list[float] = []
        got = self._intake(own, self.store.hotspot_intake, intakes, after_seq=self.feed_seq, apply=apply,
                           detector_version=self.detector.config.version, on_held=held.append)
        if self._diverged or self._pending:
            logger.info("hot-issue detector rebuilt from the shared feed (%d cases observed alone meanwhile)",
                        len(self._pending))
        self._pending.clear()
        self._diverged = False
        self._tell_alerts(own.raised)
        if self.on_group is not None:
            self.on_group(len(intakes), time.perf_counter() - began, held[0] if held else None)
        own.finish(got[pending:])

    def _observe_local(self, batch: list[_Waiter]) -> None:
        """Local mode: observe `batch` and store its members, alerts and answers in one transaction
        (`Store.hotspot_local_intake`); finishes each waiter as `_observe_shared` does."""
        self._rebuild_local_if_due()
        own = _OwnCases(batch)

        def apply(observe: Sequence[bool]) -> DetectorWrites:
            own.clear()
            for k, waiter in enumerate(batch):
                if observe[k]:
                    case, observed = waiter.intake.case, _naive_utc(waiter.intake.observed_at)
                    assignment = self.detector.observe(_intake_event(waiter.intake, observed), waiter.terms)
                    self._record_own(own, k, assignment, case.case_id, observed, case.reporter_id)
            return own.writes

        got = self._intake(own, self.store.hotspot_local_intake, [waiter.intake for waiter in batch], apply=apply)
        self._tell_alerts(own.raised)
        own.finish(got)

    def _intake(
        self, own: _OwnCases, intake: Callable[..., list[Any]], *args: Any, apply: Callable[..., DetectorWrites],
        **kwargs: Any,
    ) -> list[Any]:
        """Run a store intake (``intake``: `Store.hotspot_intake` or `hotspot_local_intake`) within the
        database deadline, with `apply` kept from touching the detector once the caller gave up, and the
        batch's answers stored in its transaction."""
        gate = _ApplyGate()

        def then(save: SavePredictions) -> None:
            # Not under the gate's lock: `save` waits on the database. Abandoned after this check, the
            # predictions may still commit; each caller spools the same one (same `made_at`), and the
            # spool's replay finds it stored.
            gate.check()
            own.answer(save)

        try:
            return self._bounded(intake, *args, apply=gate.wrap(apply),
                                 then=then if own.answering else None, **kwargs)
        except StoreHung:
            # The call goes on without us: its `apply` must not touch the detector from now on.
            gate.abandon()
            self._diverged = True
            raise
        except BaseException:
            # The detector may have observed cases that were not committed: rebuild before trusting it.
            self._diverged = True
            raise

    def _record_own(self, own: _OwnCases, k: int | None, assignment: Assignment, case_id: str, observed: datetime,
                    reporter_id: str | None) -> None:
        """Keep the members and alert an own case adds and, for the batch's ``k``-th case, its outcome."""
        writes, level = self._record(assignment, case_id, observed, reporter_id)
        own.writes.members += writes.members
        own.writes.alerts += writes.alerts
        own.raised.extend(alert[2] for alert in writes.alerts)
        if k is not None:
            own.outcome[k] = (assignment, level)

    def _tell_alerts(self, levels: list[str]) -> None:
        if self.on_alert is not None:
            for level in levels:
                self.on_alert(level)

    def _record(
        self, assignment: Assignment, case_id: str, observed: datetime, reporter_id: str | None
    ) -> tuple[DetectorWrites, str | None]:
        """The members and alert one case of this replica adds, and the burst's level after it."""
        writes = DetectorWrites()
        if assignment.hot_issue_id:
            # A burst becomes a hot issue with its second case: its members are recorded then (the first
            # one too), and each later one as it joins. Lone cases need no row: the feed (or, in local
            # mode, the cases table) has them.
            joined = (
                self.detector.burst_member_details(assignment.burst_id)
                if assignment.cases == 2
                else [(case_id, observed, reporter_id)]
            )
            writes.members.extend((assignment.burst_id, c, t, r) for c, t, r in joined)
        if assignment.alert is not None:
            alert = assignment.alert
            writes.alerts.append((alert.alert_id, alert.burst_id, alert.level, alert.raised_at, alert.to_dict()))
        return writes, self.detector.burst_level(assignment.burst_id)

    # -- alone (database unreachable) -------------------------------------------------------------
    def _observe_alone(
        self, intake: FeedIntake, terms: CaseTerms, *, remember: bool = True
    ) -> tuple[Assignment, str | None]:
        """Observe without the feed; members and alerts go through the sink. `remember`: keep the case
        to append to the feed when the database is back (shared mode in an outage)."""
        case = intake.case
        observed = _naive_utc(intake.observed_at)
        assignment = self.detector.observe(_intake_event(intake, observed), terms)
        if remember:
            # Appended to the feed when the database is back, whatever the store holds by then (the spool
            # may have stored this very case's answer): it was observed here.
            self._pending.append(replace(intake, skip_if_stored=False))
            self._diverged = True
        writes, level = self._record(assignment, case.case_id, observed, case.reporter_id)
        try:
            for member in writes.members:
                self.sink.add_hotspot_member(*member)
            for alert in writes.alerts:
                self.sink.add_alert(*alert)
        except Exception:
            # Not stored anywhere: the request fails, so the case must not join the feed later.
            self._drop_pending(case.case_id)
            raise
        self._tell_alerts([alert[2] for alert in writes.alerts])
        return assignment, level

    def withdraw(self, case_id: str) -> None:
        """Forget a case whose answer failed after the detector placed it (a 503, an error): nobody was
        answered, so it must count in no burst. Observed alone, it must not join the shared feed when the
        database is back; in local mode it is in no stored case. The detector here counts it until its next
        rebuild (from the feed, or in local mode from the snapshot and the stored cases), and no snapshot
        of this state is saved meanwhile."""
        with self._lock:
            if self.shared:
                self._drop_pending(case_id)
            else:
                self._diverged = True

    def _rebuild_local_if_due(self) -> None:
        """Local mode: rebuild a state that no longer matches the store, once the store holds every answer
        (with answers still spooled, the stored cases are not the whole story yet)."""
        if self._diverged and not getattr(self.sink, "degraded", False):
            self._rebuild_local()

    def _rebuild_local(self) -> None:
        """Local mode: the latest snapshot plus the cases stored after it, as a restart would rebuild."""
        snap = self.store.latest_snapshot(self.detector.config.version)
        self.detector = HotspotDetector.from_snapshot(snap.payload) if snap else HotspotDetector(self.detector.config)
        self.detector.rewind_clock(datetime.now(UTC).replace(tzinfo=None))
        replayed = self._replay_cases(snap.created_at if snap else None)
        self._diverged = False
        logger.info("hot-issue detector rebuilt from %s and %d stored cases, without a case left unanswered",
                    f"snapshot {snap.id}" if snap else "an empty state", replayed)

    def _drop_pending(self, case_id: str) -> None:
        for i in range(len(self._pending) - 1, -1, -1):
            if self._pending[i].case.case_id == case_id:
                del self._pending[i]
                self._diverged = True  # rebuild from the feed, which never held it
                return

    # -- snapshots --------------------------------------------------------------------------------
    def _capture(self) -> Callable[[], dict[str, Any]]:
        """Under the lock: the state as of now (milliseconds), rendered into the snapshot when called."""
        capture, feed_seq, shared = self.detector.capture(), self.feed_seq, self.shared

        def payload() -> dict[str, Any]:
            rendered = capture.snapshot()
            return {**rendered, FEED_SEQ_KEY: feed_seq} if shared else rendered

        return payload

    def _count_for_snapshot(self) -> None:
        """Called under the lock after each own case; starts a snapshot write when one is due."""
        self._since_snapshot += 1
        # A state of its own (an outage) is no snapshot for the other replicas to start from.
        if (
            self._since_snapshot >= self.snapshot_every and self._saver is None and not self._diverged
            and _monotonic() - self._last_snapshot >= self.snapshot_seconds
        ):
            # Captured under the lock (consistent); rendered and written by a thread of its own, so
            # neither the request that happens to be the 1,000th nor the cases behind the lock wait for
            # a megabytes-large document.
            payload, self._since_snapshot, self._last_snapshot = self._capture(), 0, _monotonic()
            self._saver = threading.Thread(target=self._save, args=(payload,), name="hotspot-snapshot")
            self._saver.start()

    def _save(self, payload: Callable[[], Mapping[str, Any]]) -> None:
        try:
            saved = self.sink.save_snapshot(payload(), detector_version=self.detector.config.version)
        except Exception:  # a failed snapshot costs a longer replay at the next start, never a request
            logger.exception("could not save the hot-issue snapshot; it is tried again later")
            saved = False
        with self._lock:
            if saved is False:
                # Skipped (database down) or failed: try again at shutdown or a few cases later.
                self._since_snapshot = max(self._since_snapshot, self.snapshot_every - 100)
                self._last_snapshot = _monotonic() - self.snapshot_seconds  # not a snapshot: no wait for one
            if self._saver is threading.current_thread():
                self._saver = None

    def close(self) -> None:
        """Stop following, wait for a snapshot being written, then save the state so a restart replays
        nothing."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join()
            self._follower = None
        saver = self._saver
        if saver is not None:
            saver.join()
        with self._lock:
            if self._since_snapshot and not self._diverged:
                payload, self._since_snapshot = self._capture(), 0
            else:
                return
        saved = self.sink.save_snapshot(payload(), detector_version=self.detector.config.version)
        if saved is False:
            logger.warning("the hot-issue snapshot was not saved at shutdown; the next start replays the feed")


class HotspotOwnerError(RuntimeError):
    """Another process already keeps this SQLite database's hot-issue state on its own ("local" mode)."""


#: This process's owner locks: lock path -> [file descriptor, apps holding it]. Apps of one process (tests,
#: a reloaded app) share the lock; only another process is refused.
_OWNED: dict[str, list[int]] = {}
_OWNED_LOCK = threading.Lock()


def claim_local_state(store: Store) -> str | None:
    """In "local" mode one process owns the hot-issue state: take an exclusive lock beside the SQLite file
    while an app of this process uses it, or refuse (HotspotOwnerError) when another process holds it. Two
    processes on one file had each counted half of every burst and alerted at half the count, silently.
    Returns what to give `release_local_state` (None for PostgreSQL or an in-memory database)."""
    database = store.engine.url.database
    if store.dialect != "sqlite" or not database or database == ":memory:":
        return None
    path = os.path.realpath(f"{database}.hotspot-owner")
    with _OWNED_LOCK:
        if path in _OWNED:
            _OWNED[path][1] += 1
            return path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HotspotOwnerError(
                f"another process already keeps the hot-issue state of {database} (lock {path}): with one "
                "SQLite database run one process, or set TRIAGE_HOTSPOT_SHARING=feed in every process"
            ) from None
        _OWNED[path] = [fd, 1]
        return path


def release_local_state(claim: str | None) -> None:
    if claim is None:
        return
    with _OWNED_LOCK:
        held = _OWNED.get(claim)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _OWNED[claim]
            os.close(held[0])  # releases the lock


def shares_state(sharing: str, store: Store) -> bool:
    """Whether the detector goes through the feed: `TRIAGE_HOTSPOT_SHARING`, where "auto" means the feed
    on PostgreSQL (replicas) and local on SQLite (one process: the feed's extra transaction per case would
    buy nothing there)."""
    return sharing == "feed" or (sharing == "auto" and store.dialect == "postgresql")


def _direct(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _event(entry: FeedEntry) -> CaseEvent:
    return CaseEvent(
        entry.case_id, _naive_utc(entry.observed_at), entry.title, entry.body, entry.reporter_id, entry.votes
    )


def _intake_event(intake: FeedIntake, observed: datetime) -> CaseEvent:
    case = intake.case
    return CaseEvent(case.case_id, observed, case.title, case.body, case.reporter_id, intake.votes)


class _OwnCases:
    """A batch's cases through one store intake: what observing them gave, the members and alerts to store,
    the answers stored in the intake's transaction."""

    def __init__(self, batch: list[_Waiter]) -> None:
        self.batch = batch
        self.answering = any(waiter.answer is not None for waiter in batch)
        self.outcome: dict[int, tuple[Assignment, str | None]] = {}  # by position in the batch; observed only
        self.writes = DetectorWrites()
        self.raised: list[str] = []  # levels of the alerts raised
        self.answered: dict[int, PredictionRecord] = {}

    def clear(self) -> None:
        """Forget an earlier attempt's observations (the intake's `apply` runs once per transaction)."""
        self.outcome.clear()
        self.writes = DetectorWrites()
        self.raised.clear()

    def answer(self, save: SavePredictions) -> None:
        """Make the observed cases' answers and store them with `save` (in the intake's transaction)."""
        answering = [(k, waiter.answer) for k, waiter in enumerate(self.batch)
                     if waiter.answer is not None and k in self.outcome]
        made = answer_group([(answer, *self.outcome[k]) for k, answer in answering])
        to_save = [(k, one) for (k, _), one in zip(answering, made, strict=True) if one is not None]
        if to_save:
            self.answered.update(zip((k for k, _ in to_save), save([one for _, one in to_save]), strict=True))

    def finish(self, got: Sequence[Any]) -> None:
        """Finish each waiter from what the intake returned for it: a resubmission's stored prediction (it
        was not observed), or anything else for a case observed (its outcome and stored answer)."""
        for k, waiter in enumerate(self.batch):
            if isinstance(got[k], PredictionRecord):
                waiter.finish((None, None, got[k]))
            else:
                waiter.finish((*self.outcome[k], self.answered.get(k)))


@dataclass(eq=False)
class _Waiter:
    """A request's case queued for the next intake transaction, and what became of it (set under the
    service lock)."""

    intake: FeedIntake
    terms: CaseTerms
    answer: Answer | None
    done: bool = False
    result: Outcome | None = None
    error: BaseException | None = None

    def finish(self, result: Outcome) -> None:
        self.result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True


class _AbandonedIntake(Exception):
    """A feed intake whose caller gave up (StoreHung) reached its `apply`: roll it back."""


class _ApplyGate:
    """Keeps a feed intake that outlived its deadline from changing the detector behind the caller's back.

    The caller holds the service lock only until it gives up; the abandoned call may then reach `apply`
    when the database answers. An `apply` already running when the caller gives up is waited for (it is
    arithmetic, no I/O); one that starts later raises instead, so its transaction rolls back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False

    def wrap(self, step: Callable[..., T]) -> Callable[..., T]:
        def guarded(*args: Any) -> T:
            with self._lock:
                if self._abandoned:
                    raise _AbandonedIntake("the request gave up waiting for the database")
                return step(*args)

        return guarded

    def check(self) -> None:
        with self._lock:
            if self._abandoned:
                raise _AbandonedIntake("the request gave up waiting for the database")

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True


def _window_time(claimed: datetime | None, received: datetime) -> datetime:
    """The time a case counts at in hot-issue windows: the client's claim, but never after the service
    received it. The detector's clock is the newest time it has seen, so one case dated a year ahead would
    otherwise expire every burst, for every replica and across restarts; the claim itself is stored as given."""
    if claimed is None:
        return received
    return min(_naive_utc(claimed), received)


def _naive_utc(value: datetime) -> datetime:
    """The detector works on naive UTC times; aware times are converted, naive ones taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value
