"""The transactional outbox: events for webhook subscribers, written in the transaction that caused them.

`add_event(session, ...)` is called inside a warning's transaction (`store.warnings`), so an event exists
exactly when the change it reports committed: nothing is lost if the process dies before delivery, and
nothing is announced that rolled back. Delivery (`serving.webhooks`) claims due rows, posts them outside
any transaction, then records the outcome:

* claim: PostgreSQL `SELECT ... FOR UPDATE SKIP LOCKED` (workers in several processes take disjoint rows
  without waiting on each other); SQLite a conditional `UPDATE ... WHERE state='pending' AND
  next_attempt_at <= now` under `BEGIN IMMEDIATE`. A claim pushes `next_attempt_at` forward by a lease
  and stamps a token: a worker that dies mid-delivery leaves the row to be claimed again when the lease
  ends (at-least-once delivery; receivers deduplicate by event id);
* success: `delivered`; failure: attempts + 1 and the next attempt after an exponential back-off, or
  `dead` after the configured number of attempts (an admin may `requeue` it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from store.engine import writer
from store.jsonable import to_json
from store.tables import OutboxEvent, as_utc, utcnow
from store.warning_records import OutboxRecord

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
OUTBOX_STATES = (PENDING, DELIVERED, DEAD)
MAX_ERROR_CHARS = 500


def event_row(event_type: str, body: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """A new event as an outbox row (its ``event_id``: a UUID the receivers deduplicate by)."""
    event_id = str(uuid.uuid4())
    payload = to_json({"event_id": event_id, "type": event_type, "occurred_at": as_utc(at), **body})
    return {"event_id": event_id, "event_type": event_type, "payload": payload, "state": PENDING, "attempts": 0,
            "next_attempt_at": as_utc(at), "delivered_to": [], "created_at": as_utc(at)}


def add_event(session: Session, event_type: str, body: Mapping[str, Any], at: datetime) -> str:
    """Append an event in the caller's transaction; returns its id (a UUID the receivers deduplicate by)."""
    row = event_row(event_type, body, at)
    session.add(OutboxEvent(**row))
    return str(row["event_id"])


def add_events(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """`event_row`s appended in the caller's transaction, in order, as one executemany of a single-row INSERT:
    psycopg parses that statement once and pipelines the rows, where the ORM's flush builds one INSERT with a
    placeholder per value, which psycopg parses anew on every call (a third of a warning round's time)."""
    if rows:
        session.execute(insert(OutboxEvent.__table__), list(rows))


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    """Wait before attempt `attempts + 1`: base, 2 base, 4 base, ... at most `cap` seconds."""
    return timedelta(seconds=min(cap, base * (2 ** max(0, attempts - 1))))


class Outbox:
    """The outbox of one database (its own sessions on the store's engine)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._reads = sessionmaker(engine, expire_on_commit=False)
        self._writes = sessionmaker(writer(engine), expire_on_commit=False)

    def add(self, event_type: str, body: Mapping[str, Any], at: datetime | None = None) -> str:
        """An event on its own (e.g. `alert.raised`, whose alert was stored by the hot-issue detector)."""
        with self._writes.begin() as session:
            return add_event(session, event_type, body, at or self.clock())

    def claim(self, limit: int = 20, lease: float = 60.0, now: datetime | None = None) -> list[OutboxRecord]:
        """Take up to `limit` due pending events for `lease` seconds; each taken row carries this claim's token."""
        now = as_utc(now or self.clock())
        token = str(uuid.uuid4())
        due = (
            select(OutboxEvent.id)
            .where(OutboxEvent.state == PENDING, OutboxEvent.next_attempt_at <= now)
            .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
            .limit(limit)
        )
        with self._writes.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                ids = list(session.scalars(due.with_for_update(skip_locked=True)))
                if not ids:
                    return []
                condition = OutboxEvent.id.in_(ids)
            else:  # BEGIN IMMEDIATE: no other writer between this read and the update
                condition = OutboxEvent.id.in_(due.scalar_subquery())
            session.execute(
                update(OutboxEvent)
                .where(condition, OutboxEvent.state == PENDING, OutboxEvent.next_attempt_at <= now)
                .values(claim_token=token, next_attempt_at=now + timedelta(seconds=lease))
                .execution_options(synchronize_session=False)
            )
            rows = session.scalars(
                select(OutboxEvent).where(OutboxEvent.claim_token == token).order_by(OutboxEvent.id)
            ).all()
            return [OutboxRecord.of(r) for r in rows]

    def delivered(self, record: OutboxRecord, to: Sequence[str], now: datetime | None = None) -> bool:
        """Every subscriber took it; False if the claim had lapsed and another worker holds the row now."""
        now = as_utc(now or self.clock())
        with self._writes.begin() as session:
            done = session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == record.id, OutboxEvent.claim_token == record.claim_token)
                .values(state=DELIVERED, delivered_at=now, delivered_to=list(to), claim_token=None, last_error=None)
            )
            return done.rowcount == 1

    def failed(
        self, record: OutboxRecord, error: str, delivered_to: Sequence[str], *, max_attempts: int,
        base: float, cap: float, now: datetime | None = None,
    ) -> str:
        """Record a failed attempt: pending again after a back-off, or dead after `max_attempts`. Returns the state."""
        now = as_utc(now or self.clock())
        attempts = record.attempts + 1
        state = DEAD if attempts >= max_attempts else PENDING
        with self._writes.begin() as session:
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == record.id, OutboxEvent.claim_token == record.claim_token)
                .values(
                    attempts=attempts, state=state, last_error=error[:MAX_ERROR_CHARS], claim_token=None,
                    delivered_to=list(delivered_to), next_attempt_at=now + backoff(attempts, base, cap),
                )
            )
        return state

    def requeue(self, event_id: str, now: datetime | None = None) -> OutboxRecord | None:
        """A dead event pending again, due now, its attempts reset; None if there is no dead event of that id."""
        now = as_utc(now or self.clock())
        with self._writes.begin() as session:
            done = session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.event_id == event_id, OutboxEvent.state == DEAD)
                .values(state=PENDING, attempts=0, next_attempt_at=now, claim_token=None)
            )
            if done.rowcount != 1:
                return None
            row = session.scalars(select(OutboxEvent).where(OutboxEvent.event_id == event_id)).one()
            return OutboxRecord.of(row)

    def get(self, event_id: str) -> OutboxRecord | None:
        with self._reads() as session:
            row = session.scalars(select(OutboxEvent).where(OutboxEvent.event_id == event_id)).first()
            return None if row is None else OutboxRecord.of(row)

    def events(
        self, *, state: str | None = None, event_type: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[OutboxRecord], int]:
        """Newest first, with the total under the same filters."""
        query = select(OutboxEvent)
        if state is not None:
            query = query.where(OutboxEvent.state == state)
        if event_type is not None:
            query = query.where(OutboxEvent.event_type == event_type)
        with self._reads() as session:
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = session.scalars(query.order_by(OutboxEvent.id.desc()).limit(limit).offset(offset)).all()
            return [OutboxRecord.of(r) for r in rows], total

    def counts(self) -> dict[str, int]:
        with self._reads() as session:
            rows = session.execute(select(OutboxEvent.state, func.count()).group_by(OutboxEvent.state)).all()
        found = {state: int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in OUTBOX_STATES}
