"""The hot-issue feed: the one order in which every API replica's detector observes cases.

Each replica keeps the detector in memory (it is a sequential state machine, and observing a case takes
well under a millisecond), so with several replicas behind a load balancer each would see only its own
share of the cases: a burst spread over two replicas would be two half bursts, and its alert late or
lost. Instead every case a replica observes is appended here, and every replica replays the feed in
`seq` order before it observes a case of its own. Replicas that have replayed the same prefix hold the
same state and derive the same burst and alert ids, so alerts are stored once (`ON CONFLICT DO NOTHING`
on the alert id) and none is lost.

Why the order is safe to read without a lock: rows are appended only inside `intake`, which holds one
global lock (PostgreSQL: a transaction-scoped advisory lock; SQLite: `BEGIN IMMEDIATE`) until it
commits. So a row becomes visible only after every row with a smaller `seq` has (a rolled-back append
leaves a gap, never a late row), and `entries_after` can catch up on a prefix outside the lock; only
the few rows appended since are read under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.jsonable import to_json
from store.records import CaseInput, SnapshotRecord
from store.tables import Case, HotspotAlert, HotspotFeed, HotspotMember, HotspotSnapshot, as_utc, utcnow

#: pg_advisory_xact_lock key of the feed (any fixed 64-bit number no other lock of ours uses).
FEED_LOCK_KEY = 0x7472_6961_6765_6866  # "triagehf"
#: Key under which a snapshot's payload records the last feed row it includes.
FEED_SEQ_KEY = "feed_seq"


@dataclass(frozen=True)
class FeedEntry:
    """One observed case, as the detector needs it."""

    seq: int
    case_id: str
    observed_at: datetime  # aware UTC
    title: str
    body: str
    reporter_id: str | None
    votes: int | None
    #: The terms the intake replica computed (`models.hotspots.CaseTerms.to_json`); None for older rows.
    terms: Any = None


@dataclass(frozen=True)
class FeedIntake:
    """A case a replica is about to observe (its own request's, or one it observed during an outage)."""

    case: CaseInput
    observed_at: datetime
    votes: int | None = None
    #: Its terms as a JSON document (`models.hotspots.CaseTerms.to_json`): other replicas replay them.
    terms: Any = None
    #: A request's case not to be re-scored: when the store's latest prediction of this case is for this
    #: very text, the case is a resubmission, observed when it was first stored. `Store.hotspot_intake`
    #: leaves it out of the feed and returns that prediction instead of a seq (`hotspot_local_intake`: it is
    #: not observed, and that prediction is returned).
    skip_if_stored: bool = False


@dataclass
class DetectorWrites:
    """Members and alerts the detector produced for the replica's own intakes, stored in the same commit."""

    #: (burst_id, case_id, case time, reporter_id)
    members: list[tuple[str, str, datetime, str | None]] = field(default_factory=list)
    #: (alert_id, burst_id, level, raised_at, payload)
    alerts: list[tuple[str, str, str, datetime, dict[str, Any]]] = field(default_factory=list)


#: apply(snapshot to start from or None, entries in seq order, seqs of this call's own intakes in their order;
#: None for one `Store.hotspot_intake` left out of the feed, see `FeedIntake.skip_if_stored`)
Apply = Callable[[SnapshotRecord | None, list[FeedEntry], Sequence[int | None]], DetectorWrites]

_FEED, _CASES = HotspotFeed.__table__.c, Case.__table__.c
# Core (table columns, run on the session's connection): no ORM bookkeeping on the per-request path.
_ENTRIES = (
    select(_FEED.seq, _CASES.case_id, _FEED.observed_at, _CASES.title, _CASES.body, _CASES.reporter_id, _FEED.votes,
           _FEED.terms)
    .select_from(HotspotFeed.__table__.join(Case.__table__, _CASES.id == _FEED.case_row_id))
    .order_by(_FEED.seq)
)
#: One statement for a group's rows; RETURNING in the order of the parameters (SQLAlchemy's insertmanyvalues).
_APPEND = insert(HotspotFeed.__table__).returning(HotspotFeed.__table__.c.seq, sort_by_parameter_order=True)


def entries_after(session: Session, after_seq: int, limit: int | None = None) -> list[FeedEntry]:
    query = _ENTRIES.where(_FEED.seq > after_seq)
    if limit is not None:
        query = query.limit(limit)
    return [FeedEntry(*row) for row in session.connection().execute(query).all()]


#: Rows read per query under the feed lock: with a LIMIT the planner walks the feed's primary key and joins
#: cases by theirs; without one, stale statistics once made it scan the whole cases table per case.
INTAKE_PAGE = 500


def _all_entries_after(session: Session, after_seq: int) -> list[FeedEntry]:
    entries: list[FeedEntry] = []
    while page := entries_after(session, after_seq, INTAKE_PAGE):
        entries += page
        after_seq = page[-1].seq
        if len(page) < INTAKE_PAGE:
            break
    return entries


def last_seq(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(HotspotFeed.seq), 0))).scalar_one())


def first_case_row(session: Session) -> int | None:
    """The smallest case row the feed refers to: cases stored before the feed existed have smaller ids. Not
    the first entry's: replicas store a group's case rows before they take the feed lock, so a later entry
    may hold an earlier row."""
    return session.connection().execute(select(func.min(_FEED.case_row_id))).scalar_one_or_none()


def intake(
    session: Session,
    case_row_ids: Callable[[Session, Sequence[CaseInput]], list[int]],
    intakes: Sequence[FeedIntake],
    after_seq: int | None,
    apply: Apply,
    detector_version: str,
    *,
    durable: bool = True,
    on_locked: Callable[[], object] | None = None,
) -> list[int]:
    """Append `intakes` to the feed under the feed lock, let `apply` observe everything after `after_seq`
    (None: rebuild from the latest snapshot) and store the members and alerts it returns; all in the
    caller's transaction, so they commit together or not at all. Returns the new rows' seqs, in the order
    of `intakes`. Cases and feed rows are written a group at a time: under the lock, round trips are
    what costs (1.5-3 ms each on 2 busy cores). `on_locked()` is called once the feed lock is held (the
    caller times how long it keeps it, commit included).

    `durable=False` (PostgreSQL): this commit skips its WAL flush, for a caller that commits the answer
    to the case synchronously next (flushing the WAL up to that commit flushes this one too; a crash in
    between loses a case that got no answer). The service writes the prediction in this very transaction
    instead, which keeps the flush and leaves no case stored without its answer."""
    # The cases' rows before the feed lock, which every replica waits for: they need no feed order. So case
    # rows are not in feed order; see `first_case_row`.
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres and on_locked is not None:
        on_locked()  # SQLite: the transaction's BEGIN IMMEDIATE is the lock
    row_ids = case_row_ids(session, [item.case for item in intakes]) if intakes else []
    if postgres:
        lock = func.pg_advisory_xact_lock(FEED_LOCK_KEY)
        # One round trip for the lock and, if asked, the commit without a flush of its own.
        session.execute(select(lock) if durable else select(lock, func.set_config("synchronous_commit", "off", True)))
        if on_locked is not None:
            on_locked()
    own: list[int] = []
    if intakes:
        now = utcnow()
        rows = [
            {"case_row_id": row_id, "observed_at": as_utc(item.observed_at), "votes": item.votes, "inserted_at": now,
             "terms": item.terms}
            for item, row_id in zip(intakes, row_ids, strict=True)
        ]
        own = list(session.connection().execute(_APPEND, rows).scalars())
    snapshot = None
    if after_seq is None:
        row = session.scalars(
            select(HotspotSnapshot)
            .where(HotspotSnapshot.detector_version == detector_version)
            .order_by(HotspotSnapshot.id.desc())
            .limit(1)
        ).first()
        snapshot = None if row is None else SnapshotRecord.of(row)
        after_seq = snapshot_seq(snapshot)
    store_writes(session.connection(), apply(snapshot, _all_entries_after(session, after_seq), own))
    return own


def store_writes(connection: Connection, writes: DetectorWrites) -> None:
    """The members and alerts a detector produced, in the caller's transaction (a member or an alert
    stored before is left as it is)."""
    upsert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    now = utcnow()
    if writes.members:
        connection.execute(
            upsert(HotspotMember.__table__).on_conflict_do_nothing(index_elements=["burst_id", "case_id"]),
            [{"burst_id": b, "case_id": c, "observed_at": as_utc(t), "reporter_id": r, "payload": {},
              "inserted_at": now} for b, c, t, r in writes.members],
        )
    if writes.alerts:
        connection.execute(
            upsert(HotspotAlert.__table__).on_conflict_do_nothing(index_elements=["alert_id"]),
            [{"alert_id": a, "burst_id": b, "level": level, "raised_at": as_utc(t), "payload": to_json(p),
              "inserted_at": now} for a, b, level, t, p in writes.alerts],
        )


def snapshot_seq(snapshot: SnapshotRecord | None) -> int:
    """The last feed row a snapshot includes (0: none, or a snapshot from before the feed existed)."""
    if snapshot is None or not isinstance(snapshot.payload, dict):
        return 0
    return int(snapshot.payload.get(FEED_SEQ_KEY) or 0)
