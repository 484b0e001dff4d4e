"""Warnings (预警单): issue, acknowledge (签收), resolve (办结), withdraw, update on review, and the overdue sweep.

Every function is one transaction that changes a warning row, appends its `warning_events` row and, when
subscribers must hear of it, writes the `outbox` event (`store.outbox.add_event`) — all or nothing.

Concurrency: the warning's row is locked for the change (PostgreSQL `SELECT ... FOR UPDATE`; SQLite's
writers are serialised by `BEGIN IMMEDIATE`), so two departments acknowledging at once give one
`acknowledged` and one 409. Numbers (预警〔2026〕0157号) are allocated per year under a transaction-scoped
advisory lock (PostgreSQL) or the write lock (SQLite), and are unique by constraint. Issuing is idempotent
per source (a case id or an alert id): a second issue returns the existing warning. The sweep raises each
deadline's supervision notice by a conditional update (`... WHERE acknowledge_overdue_at IS NULL`), so
sweeps racing in two processes, or run twice, escalate once per deadline.

Times come from the injected `clock` (tests move it instead of sleeping).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.warning_policy import WarningPolicy
from store.advisory_locks import TRY_LOCK_KEYS
from store.engine import writer
from store.jsonable import to_json
from store.outbox import add_event, add_events, event_row
from store.records import AlertRecord, PredictionRecord
from store.tables import EarlyWarning, WarningEvent, as_utc, utcnow
from store.warning_queries import (
    WarningFilters,
    WarningSummary,
    alerts_after,
    filtered,
    last_ids,
    predictions_after,
    unwarned_alerts,
    unwarned_predictions,
    warning_summary,
)
from store.warning_records import OPEN_STATUSES, WarningDetail, WarningDraft, WarningEventRecord, WarningRecord

logger = logging.getLogger(__name__)

SYSTEM = "system"
ISSUED, ESCALATED, RESOLVED, UPDATED = "warning.issued", "warning.escalated", "warning.resolved", "warning.updated"
_NUMBER_LOCK_NAMESPACE = b"triage-warning-number:"


class WarningNotFound(LookupError):
    """No warning with that id (or, for a department, none of its own)."""


class IllegalTransition(ValueError):
    """The step does not apply to the warning as it stands; the message says why (the API answers 409)."""


def warning_number(year: int, seq: int) -> str:
    return f"预警〔{year}〕{seq:04d}号"


def supervision_number(record: WarningRecord, escalation_level: int) -> str:
    """The 督办单's number: the warning's year and sequence and how many notices it has had."""
    return record.number.replace("预警", "督办").replace("号", f"-{escalation_level}号")


def warning_payload(record: WarningRecord) -> dict[str, Any]:
    """What subscribers are told about a warning. No case text, no reporter: see README, Warnings and push."""
    return {
        "warning": {
            "id": record.id, "number": record.number, "level": record.level, "status": record.status,
            "escalation_level": record.escalation_level, "case_id": record.case_id, "alert_id": record.alert_id,
            "department": record.department, "district": record.district, "reasons": record.reasons,
            "acknowledge_due": record.acknowledge_due, "resolve_due": record.resolve_due,
            "issued_at": record.issued_at,
        }
    }


def _number_lock_key(year: int) -> int:
    digest = hashlib.blake2b(_NUMBER_LOCK_NAMESPACE + str(year).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _group_ids(sources: set[tuple[str, str]]) -> dict[str, list[str]]:
    by_kind: dict[str, list[str]] = {}
    for kind, source_id in sources:
        by_kind.setdefault(kind, []).append(source_id)
    return by_kind


#: pg_try_advisory_lock key of issuing rounds (`WarningBook.taking_turns`): any fixed 64-bit number.
ROUND_LOCK_KEY = 0x7761_726E_726F_756E  # "warnroun"


def _event_row(warning_id: int, kind: str, actor: str, at: datetime, note: str | None = None,
               detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """A warning's event as a `WarningEvent` row: added one at a time, or inserted a chunk at once."""
    return {"warning_id": warning_id, "kind": kind, "actor": actor, "note": note, "detail": to_json(detail or {}),
            "at": at}


def _source_lock_key(kind: str, source_id: str) -> int:
    digest = hashlib.blake2b(f"{kind}:{source_id}".encode(), digest_size=8, person=b"warn-src").digest()
    return int.from_bytes(digest, "big", signed=True)


class WarningBook:
    """The warnings of one database, under one policy (deadlines, whether yellow issues, the number's year)."""

    def __init__(self, engine: Engine, policy: WarningPolicy, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self._reads = sessionmaker(engine, expire_on_commit=False)
        self._writes = sessionmaker(writer(engine), expire_on_commit=False)

    def _now(self, at: datetime | None) -> datetime:
        return as_utc(at or self.clock())

    @contextmanager
    def taking_turns(self) -> Iterator[bool]:
        """Whether this replica may run an issuing round now (yielded), holding the turn until the block ends.

        Replicas started together run their rounds at the same moments, and each read and drafted every new red
        and yellow prediction before either committed: two drafts per warning, one thrown away (rounds were 19%
        of a worker's interpreter time under 50 clients, by py-spy; 10% since). On PostgreSQL a round now takes
        a session advisory lock without waiting; a replica that finds it taken skips that round, and its next
        one reads whatever is still without a warning. On SQLite always True (one process writes at a time
        anyway)."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        with self.engine.connect() as connection:
            got = bool(connection.execute(select(func.pg_try_advisory_lock(ROUND_LOCK_KEY))).scalar())
            connection.commit()  # a session lock: no transaction is kept open through the round
            try:
                yield got
            finally:
                if got:
                    try:
                        connection.execute(select(func.pg_advisory_unlock(ROUND_LOCK_KEY)))
                        connection.commit()
                    except Exception:
                        # Not back in the pool still holding the lock: closing the session releases it.
                        connection.invalidate()
                        raise

    # -- helpers ------------------------------------------------------------------------------------
    def _deadlines(self, level: str, issued_at: datetime) -> tuple[datetime | None, datetime | None]:
        deadlines = self.policy.deadlines_for(level)
        if deadlines is None:
            return None, None
        return issued_at + deadlines.acknowledge, issued_at + deadlines.resolve

    def _next_seq(self, session: Session, year: int) -> int:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(_number_lock_key(year))))
        latest = session.execute(select(func.max(EarlyWarning.seq)).where(EarlyWarning.year == year)).scalar()
        return int(latest or 0) + 1

    @staticmethod
    def _event(session: Session, warning_id: int, kind: str, actor: str, at: datetime,
               note: str | None = None, detail: dict[str, Any] | None = None) -> None:
        session.add(WarningEvent(**_event_row(warning_id, kind, actor, at, note, detail)))

    @staticmethod
    def _locked(session: Session, warning_id: int, department: str | None) -> EarlyWarning:
        query = select(EarlyWarning).where(EarlyWarning.id == warning_id)
        if department is not None:
            query = query.where(EarlyWarning.department == department)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        row = session.scalars(query).first()
        if row is None:
            raise WarningNotFound(f"no warning with id {warning_id}")
        return row

    # -- issue --------------------------------------------------------------------------------------
    def issue(
        self, draft: WarningDraft, *, actor: str = SYSTEM, at: datetime | None = None,
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> tuple[WarningRecord, bool]:
        """The source's warning, issued now if it has none; True when this call issued it.

        `also`: further outbox events (type, body) written with a new warning, in its transaction (the
        `alert.raised` of the alert it is about), so they too are announced once."""
        now = self._now(at)
        with self._writes.begin() as session:
            existing = self._by_source(session, draft.source_kind, draft.source_id)
            if existing is not None:
                return WarningRecord.of(existing), False
            row = self._insert(session, draft, actor, now)
            for event_type, body in also:
                add_event(session, event_type, body, now)
            return WarningRecord.of(row), True

    def issue_many(
        self, items: Sequence[tuple[WarningDraft, Sequence[tuple[str, Mapping[str, Any]]]]], *,
        actor: str = SYSTEM, at: datetime | None = None,
    ) -> list[WarningRecord]:
        """`issue` for several sources in one transaction; the warnings this call issued.

        Written as a set (a handful of statements for the whole chunk, not seven per warning), because
        replicas run these rounds side by side with triage. A source another transaction is issuing right
        now (PostgreSQL: its lock is held) is left to that one; should it roll back, the sweep's
        `issue_missing` issues the source later."""
        now = self._now(at)
        with self._writes.begin() as session:
            wanted: dict[tuple[str, str], tuple[WarningDraft, Sequence[tuple[str, Mapping[str, Any]]]]] = {}
            for draft, also in items:
                wanted.setdefault((draft.source_kind, draft.source_id), (draft, also))
            claimed = self._claim_sources(session, list(wanted))
            for source in self._issued_sources(session, claimed):
                claimed.discard(source)
            todo = [item for source, item in wanted.items() if source in claimed]
            if not todo:
                return []
            year = now.astimezone(self.policy.zone).year
            first = self._next_seq(session, year)
            rows = [self._row(draft, year, first + i, now) for i, (draft, _) in enumerate(todo)]
            session.add_all(rows)
            session.flush()  # one INSERT ... RETURNING for the chunk (SQLAlchemy's insertmanyvalues)
            issued, events, outbox = [], [], []
            for row, (draft, also) in zip(rows, todo, strict=True):
                record, event, announced = self._issued_rows(row, draft, actor, now)
                events.append(event)
                outbox += [announced, *(event_row(event_type, body, now) for event_type, body in also)]
                issued.append(record)
            # Rows nothing reads back: single-row INSERTs sent as one executemany (see `add_events`).
            session.execute(insert(WarningEvent.__table__), events)
            add_events(session, outbox)
        return issued

    @staticmethod
    def _claim_sources(session: Session, sources: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The sources this transaction may issue: on PostgreSQL those whose issuing lock it got without
        waiting (one statement); on SQLite all of them (its write lock already excludes other writers)."""
        if not sources:
            return set()
        if session.get_bind().dialect.name != "postgresql":
            return set(sources)
        keys = [_source_lock_key(kind, source_id) for kind, source_id in sources]
        got = session.connection().execute(TRY_LOCK_KEYS, {"keys": keys}).all()
        taken = {k for k, ok in got if ok}
        return {source for source, k in zip(sources, keys, strict=True) if k in taken}

    @staticmethod
    def _issued_sources(session: Session, sources: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of `sources` already have a warning (one query)."""
        if not sources:
            return set()
        condition = or_(*(
            and_(EarlyWarning.source_kind == kind, EarlyWarning.source_id.in_(sorted(ids)))
            for kind, ids in _group_ids(sources).items()
        ))
        return {(kind, source_id) for kind, source_id in
                session.execute(select(EarlyWarning.source_kind, EarlyWarning.source_id).where(condition))}

    def _by_source(self, session: Session, kind: str, source_id: str) -> EarlyWarning | None:
        query = select(EarlyWarning).where(EarlyWarning.source_kind == kind, EarlyWarning.source_id == source_id)
        if session.get_bind().dialect.name == "postgresql":
            # Two intakes of one source: the advisory lock below serialises them; re-read under it.
            session.execute(select(func.pg_advisory_xact_lock(_source_lock_key(kind, source_id))))
        return session.scalars(query).first()

    def _insert(self, session: Session, draft: WarningDraft, actor: str, now: datetime) -> EarlyWarning:
        year = now.astimezone(self.policy.zone).year
        row = self._row(draft, year, self._next_seq(session, year), now)
        session.add(row)
        session.flush()
        self._issued(session, row, draft, actor, now)
        return row

    def _row(self, draft: WarningDraft, year: int, seq: int, now: datetime) -> EarlyWarning:
        acknowledge_due, resolve_due = self._deadlines(draft.level, now)
        return EarlyWarning(
            number=warning_number(year, seq), year=year, seq=seq, source_kind=draft.source_kind,
            source_id=draft.source_id, case_id=draft.case_id, alert_id=draft.alert_id, level=draft.level,
            department=draft.department, district=draft.district, reasons=to_json(draft.reasons), status="issued",
            escalation_level=0, acknowledge_due=acknowledge_due, resolve_due=resolve_due,
            policy_version=self.policy.version, issued_at=now, updated_at=now,
        )

    def _issued(self, session: Session, row: EarlyWarning, draft: WarningDraft, actor: str, now: datetime) -> None:
        """The `issued` event and the outbox event of a flushed new warning."""
        _, event, announced = self._issued_rows(row, draft, actor, now)
        session.add(WarningEvent(**event))
        add_events(session, [announced])  # its execute flushes the event first (autoflush)

    @staticmethod
    def _issued_rows(row: EarlyWarning, draft: WarningDraft, actor: str,
                     now: datetime) -> tuple[WarningRecord, dict[str, Any], dict[str, Any]]:
        """A flushed new warning's record, its `issued` event row and its outbox row."""
        record = WarningRecord.of(row)
        event = _event_row(row.id, "issued", actor, now,
                           detail={"level": draft.level, "department": draft.department, "district": draft.district})
        logger.info("warning %s id=%s level=%s department=%s", record.number, record.id, record.level,
                    record.department)
        return record, event, event_row(ISSUED, warning_payload(record), now)

    # -- lifecycle ----------------------------------------------------------------------------------
    def acknowledge(self, warning_id: int, actor: str, *, note: str | None = None, department: str | None = None,
                    at: datetime | None = None) -> WarningRecord:
        """签收: issued -> acknowledged. `department`: the caller may act on that department's warnings only."""
        now = self._now(at)
        with self._writes.begin() as session:
            row = self._locked(session, warning_id, department)
            if row.status != "issued":
                raise IllegalTransition(
                    f"warning {row.number} is {row.status}; only an issued warning can be acknowledged"
                )
            row.status, row.acknowledged_at, row.updated_at = "acknowledged", now, now
            self._event(session, row.id, "acknowledged", actor, now, note)
            return WarningRecord.of(row)

    def resolve(self, warning_id: int, actor: str, *, note: str, department: str | None = None,
                at: datetime | None = None) -> WarningRecord:
        """办结 with a note: issued or acknowledged -> resolved; emits `warning.resolved`."""
        return self._close(warning_id, actor, "resolved", note, department, at)

    def withdraw(self, warning_id: int, actor: str, *, note: str, at: datetime | None = None) -> WarningRecord:
        """A reviewer's withdrawal with a note: issued or acknowledged -> withdrawn (no event for subscribers)."""
        return self._close(warning_id, actor, "withdrawn", note, None, at)

    def _close(self, warning_id: int, actor: str, status: str, note: str, department: str | None,
               at: datetime | None) -> WarningRecord:
        if not note or not note.strip():
            raise ValueError(f"a note is required to mark a warning {status}")
        now = self._now(at)
        with self._writes.begin() as session:
            row = self._locked(session, warning_id, department)
            if row.status not in OPEN_STATUSES:
                verb = "resolve" if status == "resolved" else "withdraw"
                raise IllegalTransition(f"warning {row.number} is already {row.status}; a {row.status} warning "
                                        f"cannot be {status} (nothing to {verb})")
            row.status, row.closed_at, row.updated_at = status, now, now
            self._event(session, row.id, status, actor, now, note)
            record = WarningRecord.of(row)
            if status == "resolved":
                add_event(session, RESOLVED, warning_payload(record), now)
            return record

    def review_update(
        self, case_id: str, actor: str, *, level: str | None, department: str | None, note: str | None,
        draft: WarningDraft | None = None, at: datetime | None = None,
    ) -> tuple[WarningRecord | None, bool]:
        """A reviewer's decision on a case applied to its warning; returns (warning, changed).

        A changed level or department updates the warning (new deadlines from its issue time for a new
        level; the department whose keys see it changes), appends an `updated` event and emits
        `warning.updated`; nothing is deleted, and a closed warning keeps its status. A case without a
        warning gets one when the reviewer's level issues one (`draft`)."""
        with self._writes.begin() as session:
            return self.apply_review(session, case_id, actor, level=level, department=department, note=note,
                                     draft=draft, at=at)

    def apply_review(
        self, session: Session, case_id: str, actor: str, *, level: str | None, department: str | None,
        note: str | None, draft: WarningDraft | None = None, at: datetime | None = None,
    ) -> tuple[WarningRecord | None, bool]:
        """`review_update` in the caller's transaction (the one that stores the review: `Store.add_review`)."""
        now = self._now(at)
        row = self._by_source(session, "case", case_id)
        if row is None:
            if draft is None or not self.policy.issues(draft.level):
                return None, False
            return WarningRecord.of(self._insert(session, draft, actor, now)), True
        if session.get_bind().dialect.name == "postgresql":
            session.refresh(row, with_for_update=True)
        changes: dict[str, list[Any]] = {}
        if level is not None and level != row.level:
            changes["level"] = [row.level, level]
            row.level = level
            row.acknowledge_due, row.resolve_due = self._deadlines(level, row.issued_at)
        if department is not None and department != row.department:
            changes["department"] = [row.department, department]
            row.department = department
        if not changes:
            return WarningRecord.of(row), False
        row.updated_at = now
        self._event(session, row.id, "updated", actor, now, note, detail=changes)
        record = WarningRecord.of(row)
        add_event(session, UPDATED, {**warning_payload(record), "changes": changes}, now)
        return record, True

    # -- overdue ------------------------------------------------------------------------------------
    def sweep_overdue(self, at: datetime | None = None, limit: int = 500) -> list[WarningRecord]:
        """Raise a supervision notice (督办单) for each missed deadline not yet supervised: escalation + 1, a
        `supervised` event and `warning.escalated`. Idempotent per deadline. Returns the escalated warnings."""
        now = self._now(at)
        due = or_(
            and_(EarlyWarning.status == "issued", EarlyWarning.acknowledge_due <= now,
                 EarlyWarning.acknowledge_overdue_at.is_(None)),
            and_(EarlyWarning.status.in_(OPEN_STATUSES), EarlyWarning.resolve_due <= now,
                 EarlyWarning.resolve_overdue_at.is_(None)),
        )
        with self._reads() as session:
            candidates = list(
                session.scalars(select(EarlyWarning.id).where(due).order_by(EarlyWarning.id).limit(limit))
            )
        escalated = []
        for warning_id in candidates:
            record = self._supervise(warning_id, now)
            if record is not None:
                escalated.append(record)
        return escalated

    def _supervise(self, warning_id: int, now: datetime) -> WarningRecord | None:
        with self._writes.begin() as session:
            record = None
            for deadline, due_col, mark_col, statuses in (
                ("acknowledge", EarlyWarning.acknowledge_due, EarlyWarning.acknowledge_overdue_at, ("issued",)),
                ("resolve", EarlyWarning.resolve_due, EarlyWarning.resolve_overdue_at, OPEN_STATUSES),
            ):
                done = session.execute(
                    update(EarlyWarning)
                    .where(EarlyWarning.id == warning_id, EarlyWarning.status.in_(statuses), due_col <= now,
                           mark_col.is_(None))
                    .values({mark_col.key: now, "escalation_level": EarlyWarning.escalation_level + 1,
                             "updated_at": now})
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:
                    continue
                row = session.scalars(select(EarlyWarning).where(EarlyWarning.id == warning_id)
                                      .execution_options(populate_existing=True)).one()
                record = WarningRecord.of(row)
                notice = {
                    "notice": supervision_number(record, record.escalation_level), "deadline": deadline,
                    "due": getattr(record, f"{deadline}_due"), "escalation_level": record.escalation_level,
                }
                self._event(session, warning_id, "supervised", SYSTEM, now, detail=notice)
                add_event(session, ESCALATED, {**warning_payload(record), "supervision": notice}, now)
                logger.info("warning %s overdue (%s): supervision notice, escalation %d",
                            record.number, deadline, record.escalation_level)
            return record

    # -- reads --------------------------------------------------------------------------------------
    def get(self, warning_id: int, *, department: str | None = None) -> WarningDetail:
        """The warning with its events, oldest first; WarningNotFound (also for another department's)."""
        with self._reads() as session:
            query = select(EarlyWarning).where(EarlyWarning.id == warning_id)
            if department is not None:
                query = query.where(EarlyWarning.department == department)
            row = session.scalars(query).first()
            if row is None:
                raise WarningNotFound(f"no warning with id {warning_id}")
            events = session.scalars(
                select(WarningEvent).where(WarningEvent.warning_id == warning_id).order_by(WarningEvent.id)
            ).all()
            return WarningDetail(WarningRecord.of(row), [WarningEventRecord.of(e) for e in events])

    def summary(self, filters: WarningFilters | None = None, at: datetime | None = None) -> WarningSummary:
        """Counts by level, status, department and district, open and overdue (`store.warning_queries`)."""
        with self._reads() as session:
            return warning_summary(session, filters or WarningFilters(), self._now(at))

    def predictions_after(
        self, after_id: int, up_to: int, levels: Sequence[str], limit: int = 500
    ) -> list[tuple[PredictionRecord, str, str]]:
        """Predictions of rows (`after_id`, `up_to`] at `levels`, with their text (`store.warning_queries`)."""
        with self._reads() as session:
            return predictions_after(session, after_id, up_to, levels, limit)

    def alerts_after(
        self, after_id: int, up_to: int, limit: int = 500
    ) -> list[tuple[int, AlertRecord, str, str, str]]:
        """Alerts of rows (`after_id`, `up_to`], with the raising case's department and text."""
        with self._reads() as session:
            return alerts_after(session, after_id, up_to, limit)

    def last_ids(self) -> tuple[int, int]:
        """The newest prediction and alert row ids: where a new issuer starts."""
        with self._reads() as session:
            return last_ids(session)

    def unwarned_predictions(
        self, levels: Sequence[str], since: datetime, limit: int = 500
    ) -> list[tuple[PredictionRecord, str, str]]:
        """Recent predictions at `levels` whose case has no warning (`store.warning_queries`)."""
        with self._reads() as session:
            return unwarned_predictions(session, levels, since, limit)

    def unwarned_alerts(self, since: datetime, limit: int = 500) -> list[tuple[AlertRecord, str, str, str]]:
        """Recent alerts without a warning, with the raising case's department and text."""
        with self._reads() as session:
            return unwarned_alerts(session, since, limit)

    def for_case(self, case_id: str) -> WarningRecord | None:
        with self._reads() as session:
            row = session.scalars(
                select(EarlyWarning).where(EarlyWarning.source_kind == "case", EarlyWarning.source_id == case_id)
            ).first()
            return None if row is None else WarningRecord.of(row)

    def list(self, filters: WarningFilters, *, limit: int = 50, offset: int = 0,
             at: datetime | None = None) -> tuple[list[WarningRecord], int]:
        """Newest first, with the total under the same filters (`overdue` judged at `at`, default now)."""
        query = filtered(select(EarlyWarning), filters, self._now(at))
        with self._reads() as session:
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = session.scalars(
                query.order_by(EarlyWarning.issued_at.desc(), EarlyWarning.id.desc()).limit(limit).offset(offset)
            ).all()
            return [WarningRecord.of(r) for r in rows], total


def overdue_since(record: WarningRecord, now: datetime) -> timedelta | None:
    """How long the earliest missed deadline has passed, or None if none is."""
    missed = [getattr(record, f"{d}_due") for d in record.overdue_deadlines(now)]
    return None if not missed else now - min(missed)

