"""`Store`: the audit store's repository. Small explicit methods; every one is a single transaction.

Append-only by construction: the store inserts and reads, and has no method that updates or deletes a
row. A re-score or a changed text adds a prediction that names the one it supersedes; a reviewer's
change of mind is a new review; an alert raised again under the same id is ignored. Corrections and
retention (if ever needed) are a separate, deliberate migration or admin job, not part of this API.

Concurrency (several threads or processes writing to one database):
* alerts and hot-spot members: `INSERT ... ON CONFLICT DO NOTHING` on their unique keys, so racing
  inserts of the same alert id leave one row and each caller learns whether it stored it;
* predictions: a case's predictions form one chain (`supersedes_id` is unique). Writers of the same
  case are serialised: on PostgreSQL by a transaction-scoped advisory lock on the case id, on SQLite by
  `BEGIN IMMEDIATE` (one writer at a time; readers are never blocked in WAL mode). The read of the
  latest prediction and the insert happen under that lock, so there is no read-modify-write race;
* the hot-issue feed: appended under one lock for the whole feed, so every replica replays the same
  order (`store.hotspot_feed`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, Row, Select, bindparam, func, insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from store import claims, drift_queries, hotspot_feed, review_queries
from store.advisory_locks import LOCK_KEY, LOCK_KEYS
from store.engine import make_engine, redact, writer
from store.jsonable import to_json
from store.records import (
    AlertRecord,
    CaseInput,
    CaseRecord,
    MemberRecord,
    PendingPrediction,
    PredictionInput,
    PredictionRecord,
    ReviewRecord,
    SnapshotRecord,
)
from store.review_records import AgreementReport, CaseDetail, QueueItem
from store.tables import (
    Case,
    HotspotAlert,
    HotspotMember,
    HotspotSnapshot,
    Prediction,
    Review,
    WebSessionRevocation,
    as_utc,
    utcnow,
)

logger = logging.getLogger(__name__)
T, U = TypeVar("T"), TypeVar("U")


#: Stores predictions in an open transaction, each as `record_case_and_prediction` would (see
#: `Store.hotspot_intake`); the records in the order given.
SavePredictions = Callable[[Sequence[PendingPrediction]], list[PredictionRecord]]

DEFAULT_ALERT_LIMIT = 100
UNVERSIONED = "unversioned"
_CASE_LOCK_NAMESPACE = b"triage-case:"


# Hot-path statements, built once (building a statement per call costs more than running it on SQLite), and
# run as Core on the transaction's connection: no ORM object or session bookkeeping per case.
_PREDICTIONS, _CASES = Prediction.__table__, Case.__table__
#: A case's newest prediction with its text's hash, as one Core row.
_LATEST_PREDICTION = (
    select(_PREDICTIONS, _CASES.c.text_hash)
    .join(_CASES, _CASES.c.id == _PREDICTIONS.c.case_row_id)
    .where(_PREDICTIONS.c.case_id == bindparam("case_id"))
    .order_by(_PREDICTIONS.c.id.desc())
    .limit(1)
)
_INSERT_PREDICTION = insert(_PREDICTIONS).returning(*_PREDICTIONS.c)
#: A group's predictions in one statement, RETURNING in the order of the parameters.
_INSERT_PREDICTIONS = insert(_PREDICTIONS).returning(*_PREDICTIONS.c, sort_by_parameter_order=True)
#: The newest prediction of each of several cases, with its text's hash.
_LATEST_PREDICTIONS = (
    select(_PREDICTIONS, _CASES.c.text_hash)
    .join(_CASES, _CASES.c.id == _PREDICTIONS.c.case_row_id)
    .where(
        _PREDICTIONS.c.id.in_(
            select(func.max(_PREDICTIONS.c.id))
            .where(_PREDICTIONS.c.case_id.in_(bindparam("case_ids", expanding=True)))
            .group_by(_PREDICTIONS.c.case_id)
            .scalar_subquery()
        )
    )
)
#: The stored (case_id, text) versions among several.
_CASE_ROWS = select(_CASES.c.id, _CASES.c.case_id, _CASES.c.text_hash).where(
    tuple_(_CASES.c.case_id, _CASES.c.text_hash).in_(bindparam("keys", expanding=True))
)
_INSERT_CASES = insert(_CASES).returning(_CASES.c.id, sort_by_parameter_order=True)
#: The (case_id, text) version's row id when it is new (None when it was stored before), per dialect.
_INSERT_CASE = {
    name: dialect.insert(_CASES).on_conflict_do_nothing(index_elements=["case_id", "text_hash"]).returning(_CASES.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
#: A prediction of this case and text made at that instant (a spooled write replayed: `replay=True`).
_MADE_AT = (
    select(_PREDICTIONS, _CASES.c.text_hash)
    .join(_CASES, _CASES.c.id == _PREDICTIONS.c.case_row_id)
    .where(
        _PREDICTIONS.c.case_id == bindparam("case_id"),
        _CASES.c.text_hash == bindparam("text_hash"),
        _PREDICTIONS.c.created_at == bindparam("made_at"),
    )
    .limit(1)
)
_CASE_ROW_ID = select(_CASES.c.id).where(
    _CASES.c.case_id == bindparam("case_id"), _CASES.c.text_hash == bindparam("text_hash")
)


def text_hash(title: str | None, body: str | None) -> str:
    """Fingerprint of a case's text: sha256 of the exact title and body (no normalisation)."""
    encoded = json.dumps([title or "", body or ""], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def _advisory_key(case_id: str) -> int:
    digest = hashlib.blake2b(_CASE_LOCK_NAMESPACE + case_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Store:
    """The audit store on one database. Thread-safe; one per process (`serving.services.open_services`).

    The schema must already be at the newest migration (`store.upgrade_database`); the store
    itself never creates tables.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reads = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = writer(engine)
        # PostgreSQL: one-statement reads on the request path without BEGIN and ROLLBACK around them (3 round
        # trips -> 1; a single SELECT sees one snapshot either way). On SQLite switching the isolation level
        # per checkout costs more than its deferred BEGIN.
        self._single_reads = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
        )
        self._writes = sessionmaker(self._write_engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str | URL, **engine_kwargs: Any) -> Store:
        """A store with its own engine (`make_engine`: pings on a server, SQLite pragmas)."""
        return cls(make_engine(url, **engine_kwargs))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Store({redact(self.engine.url)!r})"

    def dispose(self) -> None:
        """Close the pool's connections (at shutdown; the store can still reconnect if used again)."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached (for readiness checks)."""
        with self._reads() as session:
            session.execute(select(1))

    # -- helpers ------------------------------------------------------------------------------------
    def _insert(self, session: Session, table: Any) -> Any:
        """A dialect-specific INSERT (both support `on_conflict_do_nothing` and RETURNING)."""
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        return dialect.insert(table.__table__)

    def _lock_case(self, session: Session, case_id: str) -> None:
        """Serialise writers of one case until the transaction ends (SQLite: BEGIN IMMEDIATE did)."""
        _lock_case_on(session.connection(), case_id)

    @staticmethod
    def _predictions_of(case_id: str) -> Select[tuple[Prediction, str]]:
        return (
            select(Prediction, Case.text_hash)
            .join(Case, Case.id == Prediction.case_row_id)
            .where(Prediction.case_id == case_id)
        )

    @staticmethod
    def _latest(connection: Connection, case_id: str) -> tuple[Row[Any], str] | None:
        """The case's newest prediction (a Core row `PredictionRecord.of` reads) and its text's hash."""
        row = connection.execute(_LATEST_PREDICTION, {"case_id": case_id}).first()
        return None if row is None else (row, row.text_hash)

    @staticmethod
    def _case_row_id(connection: Connection, case: CaseInput, digest: str) -> int:
        """The id of the (case_id, text) version, inserting it if new."""
        statement = _INSERT_CASE[connection.dialect.name]
        inserted = connection.execute(statement, _case_values(case, digest)).scalar_one_or_none()
        if inserted is not None:
            return inserted
        return connection.execute(_CASE_ROW_ID, {"case_id": case.case_id, "text_hash": digest}).scalar_one()

    @staticmethod
    def _case_row_ids(
        connection: Connection, cases: Sequence[CaseInput], rows: dict[tuple[str, str], int]
    ) -> list[int]:
        """The row id of each case's version, the new ones inserted: two statements for a group. `rows`
        ((case_id, text hash) -> row id) gains them, for the predictions stored next in the transaction. A
        version another writer stores between the two statements makes the insert fail (unique key); the
        feed then serves its group again case by case."""
        keys = [(case.case_id, text_hash(case.title, case.body)) for case in cases]
        wanted = dict(zip(keys, cases, strict=True))
        rows.update({(r.case_id, r.text_hash): r.id for r in connection.execute(_CASE_ROWS, {"keys": list(wanted)})})
        missing = [key for key in wanted if key not in rows]
        if missing:
            ids = connection.execute(_INSERT_CASES, [_case_values(wanted[key], key[1]) for key in missing]).scalars()
            rows.update(zip(missing, ids, strict=True))
        return [rows[key] for key in keys]

    # -- cases and predictions ----------------------------------------------------------------------
    def record_case_and_prediction(
        self,
        case: CaseInput,
        prediction: PredictionInput,
        *,
        rescore: bool = False,
        made_at: datetime | None = None,
        replay: bool = False,
    ) -> PredictionRecord:
        """Store a case and the model's prediction for it, idempotently.

        * Same `case_id` and same text as the case's latest prediction: nothing is stored; that
          prediction is returned (`is_new=False`), unless `rescore=True`.
        * Otherwise (first time, changed text, re-score, or a text seen earlier coming back): the text
          version is stored if new and a new prediction is added, with `supersedes_id` pointing at the
          case's latest prediction (None for the first). Returned with `is_new=True`.

        `made_at` is when the prediction was made (its `created_at`; default now). `replay=True` (the
        spool, `serving.spool`) first looks for a prediction of this case and text made at that very
        instant and returns it instead of storing one: a spooled write replayed twice, or one that
        committed although its caller saw an error, is stored once, re-scores included.
        """
        with self._write_engine.begin() as connection:
            record = self._store_prediction(
                connection, case, prediction, rescore=rescore, made_at=made_at, replay=replay
            )
        if record.is_new:
            logger.debug(
                "stored prediction id=%s case_id=%s supersedes=%s", record.id, record.case_id, record.supersedes_id
            )
        return record

    def _store_prediction(
        self,
        connection: Connection,
        case: CaseInput,
        prediction: PredictionInput,
        *,
        rescore: bool = False,
        made_at: datetime | None = None,
        replay: bool = False,
        case_rows: Mapping[tuple[str, str], int] | None = None,
    ) -> PredictionRecord:
        """`record_case_and_prediction` inside the caller's transaction. ``case_rows``: (case_id, text hash)
        -> case row id of versions this transaction already stored (the feed's intake), not looked up again."""
        digest = text_hash(case.title, case.body)
        _lock_case_on(connection, case.case_id)
        if replay and made_at is not None:
            seen = connection.execute(
                _MADE_AT, {"case_id": case.case_id, "text_hash": digest, "made_at": as_utc(made_at)}
            ).first()
            if seen is not None:
                return PredictionRecord.of(seen, digest)
        latest = self._latest(connection, case.case_id)
        if latest is not None and latest[1] == digest and not rescore:
            return PredictionRecord.of(latest[0], digest)
        # A Core INSERT ... RETURNING: one statement, no unit-of-work bookkeeping on the hot path.
        row_id = (case_rows or {}).get((case.case_id, digest)) or self._case_row_id(connection, case, digest)
        values = _prediction_values(case, prediction, row_id, made_at, None if latest is None else latest[0])
        row = connection.execute(_INSERT_PREDICTION, values).one()
        return PredictionRecord.of(row, digest, is_new=True)

    def _store_predictions(
        self, connection: Connection, items: Sequence[PendingPrediction], case_rows: Mapping[tuple[str, str], int],
        latest: _Latest | None = None,
    ) -> list[PredictionRecord]:
        """`_store_prediction` for a group in three statements (the cases' locks, their latest predictions,
        the new ones), or one when ``latest`` (`_latest_locked` earlier in the transaction) covers the group.
        A case twice in the group is stored one prediction at a time, in order."""
        case_ids = [item.case.case_id for item in items]
        if len(set(case_ids)) < len(case_ids):
            return [
                self._store_prediction(connection, item.case, item.prediction, rescore=item.rescore,
                                       made_at=item.made_at, case_rows=case_rows)
                for item in items
            ]
        if latest is None or not latest.case_ids.issuperset(case_ids):
            latest = self._latest_locked(connection, case_ids)
        records: dict[int, PredictionRecord] = {}
        new: list[tuple[int, str, dict[str, Any]]] = []
        for k, item in enumerate(items):
            digest = text_hash(item.case.title, item.case.body)
            before = latest.rows.get(item.case.case_id)
            if before is not None and before.text_hash == digest and not item.rescore:
                records[k] = PredictionRecord.of(before, digest)
                continue
            row_id = case_rows.get((item.case.case_id, digest)) or self._case_row_id(connection, item.case, digest)
            new.append((k, digest, _prediction_values(item.case, item.prediction, row_id, item.made_at, before)))
        if new:
            rows = connection.execute(_INSERT_PREDICTIONS, [values for _, _, values in new]).all()
            for (k, digest, _), row in zip(new, rows, strict=True):
                records[k] = PredictionRecord.of(row, digest, is_new=True)
        return [records[k] for k in range(len(items))]

    @staticmethod
    def _latest_locked(connection: Connection, case_ids: Sequence[str]) -> _Latest:
        """Lock the cases until the transaction ends, then read their latest predictions (two statements)."""
        _lock_cases_on(connection, case_ids)
        if len(case_ids) == 1:  # a single request's case: the plain query (no grouping subquery to plan)
            rows = {row.case_id: row for row in connection.execute(_LATEST_PREDICTION, {"case_id": case_ids[0]})}
        else:
            rows = {row.case_id: row for row in connection.execute(_LATEST_PREDICTIONS, {"case_ids": list(case_ids)})}
        return _Latest(frozenset(case_ids), rows)

    @classmethod
    def _resubmissions(
        cls, connection: Connection, intakes: Sequence[hotspot_feed.FeedIntake], *, answering: bool
    ) -> tuple[_Latest | None, dict[int, PredictionRecord]]:
        """An intake's first step: the cases' locks and latest predictions (when it stores answers or may
        leave a case out), and by position the latest prediction of each `skip_if_stored` intake whose text
        it was made for (a resubmission)."""
        if not answering and not any(intake.skip_if_stored for intake in intakes):
            return None, {}
        latest = cls._latest_locked(connection, [intake.case.case_id for intake in intakes])
        found: dict[int, PredictionRecord] = {}
        for k, intake in enumerate(intakes):
            row = latest.rows.get(intake.case.case_id) if intake.skip_if_stored else None
            if row is not None and row.text_hash == text_hash(intake.case.title, intake.case.body):
                found[k] = PredictionRecord.of(row, row.text_hash)
        return latest, found

    def existing_prediction(self, case_id: str, title: str | None, body: str | None) -> PredictionRecord | None:
        """The prediction `record_case_and_prediction` would return without storing anything, if any.

        Lets a route skip scoring a resubmission; `record_case_and_prediction` still decides under its
        lock, so a race between the two costs one wasted scoring, never a duplicate row.
        """
        with self._single_reads.connect() as connection:
            latest = self._latest(connection, case_id)
        if latest is None or latest[1] != text_hash(title, body):
            return None
        return PredictionRecord.of(latest[0], latest[1])

    def latest_prediction(self, case_id: str) -> PredictionRecord | None:
        """The case's newest prediction (of its newest text), or None if the case is unknown."""
        with self.engine.connect() as connection:
            latest = self._latest(connection, case_id)
        return None if latest is None else PredictionRecord.of(*latest)

    def predictions_for(self, case_id: str) -> list[PredictionRecord]:
        """Every prediction of the case, oldest first (each one's `supersedes_id` is the one before)."""
        with self._reads() as session:
            rows = session.execute(self._predictions_of(case_id).order_by(Prediction.id)).all()
        return [PredictionRecord.of(prediction, digest) for prediction, digest in rows]

    def case_versions(self, case_id: str) -> list[CaseRecord]:
        """Every distinct text the case was submitted with, first received first."""
        with self._reads() as session:
            rows = session.scalars(select(Case).where(Case.case_id == case_id).order_by(Case.id)).all()
            return [CaseRecord.of(row) for row in rows]

    def cases_received_since(self, since: datetime | None, *, before_row: int | None = None) -> list[CaseRecord]:
        """Case versions stored after `since` (all if None), in the order they were stored; with
        `before_row`, only rows with a smaller id.

        The intake stream of a detector without the hot-issue feed: restored from its latest snapshot
        plus these.
        """
        query = select(Case).order_by(Case.id)
        if since is not None:
            query = query.where(Case.received_at > as_utc(since))
        if before_row is not None:
            query = query.where(Case.id < before_row)
        with self._reads() as session:
            return [CaseRecord.of(row) for row in session.scalars(query).all()]

    def count_predictions(self) -> int:
        with self._reads() as session:
            return session.execute(select(func.count()).select_from(Prediction)).scalar_one()

    # -- reviews (issue 4) --------------------------------------------------------------------------
    def add_review(
        self,
        case_id: str,
        prediction_id: int,
        reviewer: str,
        *,
        decided_department: str | None = None,
        decided_level: str | None = None,
        note: str | None = None,
        then: Callable[[Session, ReviewRecord], object] | None = None,
    ) -> ReviewRecord:
        """Append a reviewer's decision on one of the case's predictions (ValueError if it isn't one).

        `then(session, review)` runs in the same transaction (the case's warning following the decision,
        `store.warnings.WarningBook.apply_review`): both commit, or neither."""
        with self._writes.begin() as session:
            owner = session.execute(select(Prediction.case_id).where(Prediction.id == prediction_id)).scalar()
            if owner != case_id:
                raise ValueError(f"prediction {prediction_id} is not a prediction of case {case_id!r}")
            row = Review(
                case_id=case_id,
                prediction_id=prediction_id,
                reviewer=reviewer,
                decided_department=decided_department,
                decided_level=decided_level,
                note=note,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            record = ReviewRecord.of(row)
            if then is not None:
                then(session, record)
            return record

    # -- claims -----------------------------------------------------------------------------------
    def claim_case(self, case_id: str, reviewer: str) -> claims.Claim:
        """Claim (or renew) a case for a reviewer; `claims.ClaimConflict` if another reviewer holds it."""
        with self._writes.begin() as session:
            self._lock_case(session, case_id)
            return claims.claim(session, case_id, reviewer)

    def release_case(self, case_id: str, reviewer: str) -> bool:
        """Let a case go; False if the reviewer did not hold it."""
        with self._writes.begin() as session:
            self._lock_case(session, case_id)
            return claims.release(session, case_id, reviewer)

    def live_claims(self, case_ids: Sequence[str]) -> dict[str, claims.Claim]:
        """Who holds each of these cases now (cases nobody holds are left out)."""
        with self._reads() as session:
            return claims.live_claims(session, case_ids)

    def pending_prediction(self, prediction_id: int) -> PredictionRecord | None:
        """The prediction if it is still waiting for a review (its case's latest, not reviewed), else None."""
        with self._reads() as session:
            return review_queries.pending_prediction(session, prediction_id)

    def reviews_for(self, case_id: str) -> list[ReviewRecord]:
        """Every review of the case, oldest first."""
        with self._reads() as session:
            rows = session.scalars(select(Review).where(Review.case_id == case_id).order_by(Review.id)).all()
            return [ReviewRecord.of(row) for row in rows]

    def review_queue(
        self,
        *,
        level: str | None = None,
        department: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = review_queries.DEFAULT_QUEUE_LIMIT,
        offset: int = 0,
        search: str | None = None,
    ) -> list[QueueItem]:
        """Pending cases (latest prediction unreviewed): red, yellow, needs_review, the rest; oldest first.

        `since` (inclusive) and `until` (exclusive) bound when the scored text was received; `search`: words
        that must each be the case id or occur in its title or body (`review_queries.search_terms`).
        """
        with self._reads() as session:
            return review_queries.review_queue(
                session, level=level, department=department, since=since, until=until, limit=limit, offset=offset,
                search=review_queries.search_terms(search),
            )

    def review_queue_counts(
        self,
        *,
        level: str | None = None,
        department: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
    ) -> dict[str, int]:
        """Pending cases per priority ("red", "yellow", "review", "other"), under the queue's filters."""
        with self._reads() as session:
            return review_queries.review_queue_counts(
                session, level=level, department=department, since=since, until=until,
                search=review_queries.search_terms(search),
            )

    def case_detail(self, case_id: str) -> CaseDetail | None:
        """Versions, predictions, reviews, current alert and burst mates of one case; None if unknown."""
        with self._reads() as session:
            return review_queries.case_detail(session, case_id)

    def known_departments(self) -> list[str]:
        """Departments named by stored predictions (what a review may choose when no model is loaded)."""
        with self._reads() as session:
            return review_queries.known_departments(session)

    def agreement_report(self, *, since: datetime | None = None, until: datetime | None = None) -> AgreementReport:
        """Model vs reviewer agreement over each case's latest review made in [since, until)."""
        with self._reads() as session:
            return review_queries.agreement_report(session, since=since, until=until)

    def served_predictions(
        self, *, since: datetime | None = None, until: datetime | None = None, limit: int = 20_000
    ) -> tuple[list[drift_queries.ServedPrediction], bool]:
        """Predictions made in [since, until) with their case text, newest first (at most `limit`), and whether
        more were left out: the drift report's window."""
        with self._reads() as session:
            return drift_queries.served_predictions(session, since=since, until=until, limit=limit)

    def reviewed_outcomes(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[drift_queries.ReviewedOutcome]:
        """Each case's latest review of a prediction made in [since, until): results over time."""
        with self._reads() as session:
            return drift_queries.reviewed_outcomes(session, since=since, until=until)

    # -- hot issues ---------------------------------------------------------------------------------
    def add_hotspot_member(
        self,
        burst_id: str,
        case_id: str,
        observed_at: datetime,
        reporter_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record that a case joined a burst; True if stored, False if it was already a member.

        `observed_at` is the case's own time; `payload` is whatever the detector needs to replay the
        case (tokens, weights, place).
        """
        with self._writes.begin() as session:
            statement = (
                self._insert(session, HotspotMember)
                .values(
                    burst_id=burst_id,
                    case_id=case_id,
                    observed_at=observed_at,
                    reporter_id=reporter_id,
                    payload=to_json(payload or {}),
                    inserted_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["burst_id", "case_id"])
                .returning(HotspotMember.__table__.c.id)
            )
            return session.execute(statement).scalar_one_or_none() is not None

    def members_since(
        self, since: datetime | None, *, by: Literal["inserted_at", "observed_at"] = "inserted_at"
    ) -> list[MemberRecord]:
        """Members stored after `since` (all if None), in the order the cases were observed.

        `by="inserted_at"` (default) compares with when the store received them, which is what restoring
        the detector needs: `latest_snapshot()` plus `members_since(snapshot.created_at)`.
        `by="observed_at"` compares with the cases' own times.
        """
        column = HotspotMember.inserted_at if by == "inserted_at" else HotspotMember.observed_at
        query = select(HotspotMember).order_by(HotspotMember.observed_at, HotspotMember.id)
        if since is not None:
            query = query.where(column > as_utc(since))
        with self._reads() as session:
            return [MemberRecord.of(row) for row in session.scalars(query).all()]

    def members_of(self, burst_id: str) -> list[MemberRecord]:
        """A burst's members in the order they were observed (its trajectory)."""
        query = (
            select(HotspotMember)
            .where(HotspotMember.burst_id == burst_id)
            .order_by(HotspotMember.observed_at, HotspotMember.id)
        )
        with self._reads() as session:
            return [MemberRecord.of(row) for row in session.scalars(query).all()]

    def add_alert(
        self, alert_id: str, burst_id: str, level: str, raised_at: datetime, payload: Mapping[str, Any]
    ) -> bool:
        """Store an alert; True if stored, False if an alert with this id already was (nothing changes).

        Race-safe: concurrent calls with one id leave one row (`ON CONFLICT DO NOTHING`).
        """
        with self._writes.begin() as session:
            statement = (
                self._insert(session, HotspotAlert)
                .values(
                    alert_id=alert_id,
                    burst_id=burst_id,
                    level=level,
                    raised_at=raised_at,
                    payload=to_json(payload),
                    inserted_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["alert_id"])
                .returning(HotspotAlert.__table__.c.id)
            )
            stored = session.execute(statement).scalar_one_or_none() is not None
        if stored:
            logger.info("hot-issue alert %s (%s) for burst %s", alert_id, level, burst_id)
        return stored

    def alert(self, alert_id: str) -> AlertRecord | None:
        with self._reads() as session:
            row = session.scalars(select(HotspotAlert).where(HotspotAlert.alert_id == alert_id)).first()
            return None if row is None else AlertRecord.of(row)

    def alerts_for_burst(self, burst_id: str) -> list[AlertRecord]:
        """Every alert of one burst, oldest first (a yellow then its escalation to red)."""
        query = (
            select(HotspotAlert)
            .where(HotspotAlert.burst_id == burst_id)
            .order_by(HotspotAlert.raised_at, HotspotAlert.id)
        )
        with self._reads() as session:
            return [AlertRecord.of(row) for row in session.scalars(query).all()]

    def open_alerts(
        self, level: str | None = None, limit: int = DEFAULT_ALERT_LIMIT, *, since: datetime | None = None
    ) -> list[AlertRecord]:
        """Each burst's most recent alert, newest first; at most `limit`.

        A burst that was yellow and later red appears once, as red. `level` keeps bursts whose current
        level is that one; `since` keeps alerts raised at or after it (e.g. within the detector's window).
        """
        ranked = select(
            HotspotAlert.id,
            func.row_number()
            .over(
                partition_by=HotspotAlert.burst_id,
                order_by=(HotspotAlert.raised_at.desc(), HotspotAlert.id.desc()),
            )
            .label("rank"),
        ).subquery()
        query = (
            select(HotspotAlert)
            .join(ranked, ranked.c.id == HotspotAlert.id)
            .where(ranked.c.rank == 1)
            .order_by(HotspotAlert.raised_at.desc(), HotspotAlert.id.desc())
            .limit(limit)
        )
        if level is not None:
            query = query.where(HotspotAlert.level == level)
        if since is not None:
            query = query.where(HotspotAlert.raised_at >= as_utc(since))
        with self._reads() as session:
            return [AlertRecord.of(row) for row in session.scalars(query).all()]

    def hotspot_feed_after(self, after_seq: int, limit: int | None = None) -> list[hotspot_feed.FeedEntry]:
        """Feed rows after `after_seq`, in order; safe without the feed lock (see store.hotspot_feed)."""
        with self._reads() as session:
            return hotspot_feed.entries_after(session, after_seq, limit)

    def hotspot_feed_last_seq(self) -> int:
        with self._reads() as session:
            return hotspot_feed.last_seq(session)

    def hotspot_feed_first_case_row(self) -> int | None:
        """The smallest case row in the feed (cases stored before it predate the feed), or None."""
        with self._reads() as session:
            return hotspot_feed.first_case_row(session)

    def hotspot_intake(
        self,
        intakes: Sequence[hotspot_feed.FeedIntake],
        *,
        after_seq: int | None,
        apply: hotspot_feed.Apply,
        detector_version: str,
        then: Callable[[SavePredictions], object] | None = None,
        on_held: Callable[[float], object] | None = None,
    ) -> list[int | PredictionRecord]:
        """Append cases to the hot-issue feed and observe everything after `after_seq` in one locked
        transaction; see `store.hotspot_feed.intake`. Returns each intake's feed seq, in order, or for one
        `FeedIntake.skip_if_stored` left out (a resubmission) its stored prediction: a request's one
        transaction both finds a resubmission and stores a new case, and no lookup outside it is needed.

        `then(save)` runs after `apply`, in the same transaction: `save(pending predictions)` stores the
        answers to the caller's cases as `record_case_and_prediction` would, so each case's feed row, its
        burst's members and alerts and its prediction commit together (a process killed in between leaves
        none of them). `on_held(seconds)`: how long the committed transaction held the feed lock, from
        taking it to its commit (every replica waits for that lock: its share of the time is the limit of
        the hot-issue step across replicas)."""
        case_rows: dict[tuple[str, str], int] = {}
        locked_at: list[float] = []
        with self._writes.begin() as session:
            # The cases' locks and latest predictions before the feed lock too (see `intake`). Case locks are
            # always taken before the feed's, never after, so two writers never wait on each other in a
            # cycle; and while they are held no one else can add a prediction to these cases.
            latest, stored = self._resubmissions(session.connection(), intakes, answering=then is not None)
            appended = [intake for k, intake in enumerate(intakes) if k not in stored]

            def apply_own(snapshot: SnapshotRecord | None, entries: list[hotspot_feed.FeedEntry],
                          own: Sequence[int | None]) -> hotspot_feed.DetectorWrites:
                return apply(snapshot, entries, _aligned(len(intakes), dict.fromkeys(stored), own))

            seqs = hotspot_feed.intake(
                session,
                lambda s, cases: self._case_row_ids(s.connection(), cases, case_rows),
                appended,
                after_seq,
                apply_own,
                detector_version,
                durable=then is not None,
                on_locked=lambda: locked_at.append(time.perf_counter()),
            )
            if then is not None:
                then(functools.partial(self._store_predictions, session.connection(), case_rows=case_rows,
                                       latest=latest))
        if on_held is not None and locked_at:
            on_held(time.perf_counter() - locked_at[0])
        return _aligned(len(intakes), stored, seqs)

    def hotspot_local_intake(
        self,
        intakes: Sequence[hotspot_feed.FeedIntake],
        *,
        apply: Callable[[Sequence[bool]], hotspot_feed.DetectorWrites],
        then: Callable[[SavePredictions], object] | None = None,
    ) -> list[PredictionRecord | None]:
        """`hotspot_intake` for a detector one process owns ("local" mode: no feed, no feed lock). In one
        transaction: the intakes' latest predictions under their cases' locks; `apply(observe)`, where
        ``observe[k]`` is False for an intake left out as a resubmission (`FeedIntake.skip_if_stored`),
        observes the others; the members and alerts it returns are stored; then `then(save)` stores the
        answers. So a case's members, alerts and prediction commit together, and a resubmission is found
        without a lookup before scoring. Returns, by position, the stored prediction of each intake left
        out, None for the others."""
        with self._write_engine.begin() as connection:  # Core only: no session bookkeeping per request
            latest, stored = self._resubmissions(connection, intakes, answering=then is not None)
            hotspot_feed.store_writes(connection, apply([k not in stored for k in range(len(intakes))]))
            if then is not None:
                then(functools.partial(self._store_predictions, connection, case_rows={}, latest=latest))
        return [stored.get(k) for k in range(len(intakes))]

    def save_snapshot(self, payload: Mapping[str, Any], *, detector_version: str | None = None) -> SnapshotRecord:
        """Append the detector's `snapshot()`; `detector_version` defaults to the payload's "version".

        The payload is stored as given, encoded once by the engine: the detector's snapshot is plain JSON by
        construction (its tests hold it to that), and a checking copy through `to_json` cost more CPU
        than everything else a worker did while one was written.
        """
        version = detector_version or str(payload.get("version") or UNVERSIONED)
        with self._writes.begin() as session:
            row = HotspotSnapshot(created_at=utcnow(), detector_version=version, payload=dict(payload))
            session.add(row)
            session.flush()
            return SnapshotRecord.of(row)

    def latest_snapshot(self, detector_version: str | None = None) -> SnapshotRecord | None:
        """The newest snapshot (of that detector version, if given), or None."""
        query = select(HotspotSnapshot).order_by(HotspotSnapshot.id.desc()).limit(1)
        if detector_version is not None:
            query = query.where(HotspotSnapshot.detector_version == detector_version)
        with self._reads() as session:
            row = session.scalars(query).first()
            return None if row is None else SnapshotRecord.of(row)

    # -- reviewer-page sessions ---------------------------------------------------------------------
    def revoke_web_session(self, session_id: str) -> None:
        """Record a logged-out session (idempotent: a second logout of the same cookie changes nothing)."""
        upsert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self._writes.begin() as session:
            session.execute(
                upsert(WebSessionRevocation.__table__).on_conflict_do_nothing(index_elements=["session_id"]),
                {"session_id": session_id, "revoked_at": utcnow()},
            )

    def web_session_revoked(self, session_id: str) -> bool:
        with self._reads() as session:
            return session.get(WebSessionRevocation, session_id) is not None


def _case_values(case: CaseInput, digest: str) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "text_hash": digest,
        "title": case.title or "",
        "body": case.body or "",
        "created_at": case.created_at,
        "reporter_id": case.reporter_id,
        "channel": case.channel,
        "received_at": case.received_at,
    }


@dataclass(frozen=True)
class _Latest:
    """The latest prediction row of each of `case_ids` that has one, read under the cases' locks."""

    case_ids: frozenset[str]
    rows: dict[str, Any]


def _aligned(size: int, left_out: Mapping[int, T], appended: Sequence[U]) -> list[T | U]:
    """``appended``'s items in the positions not ``left_out``, which keep their own: back in intake order."""
    rest = iter(appended)
    return [left_out[k] if k in left_out else next(rest) for k in range(size)]


def _prediction_values(
    case: CaseInput, prediction: PredictionInput, case_row_id: int, made_at: datetime | None, supersedes: Any
) -> dict[str, Any]:
    """The row of a new prediction (`supersedes`: the case's latest prediction row, or None)."""
    return {
        "case_row_id": case_row_id,
        "case_id": case.case_id,
        "model_name": prediction.model_name,
        "model_version": prediction.model_version,
        "department": prediction.department,
        "department_confidence": float(prediction.department_confidence),
        "needs_review": bool(prediction.needs_review),
        "top": to_json(prediction.top),
        "risk_level": prediction.risk_level,
        "risk_probabilities": to_json(prediction.risk_probabilities),
        "reasons": to_json(prediction.reasons),
        "hot_issue_id": prediction.hot_issue_id,
        "latency_ms": prediction.latency_ms,
        "created_at": utcnow() if made_at is None else as_utc(made_at),
        "supersedes_id": None if supersedes is None else supersedes.id,
    }


def _lock_cases_on(connection: Connection, case_ids: Sequence[str]) -> None:
    """`_lock_case_on` for several cases in one statement, in key order (two groups never wait on each
    other in a cycle)."""
    if connection.dialect.name == "postgresql":
        connection.execute(LOCK_KEYS, {"keys": sorted({_advisory_key(case_id) for case_id in case_ids})}).all()


def _lock_case_on(connection: Connection, case_id: str) -> None:
    """Serialise writers of one case until the transaction ends (SQLite: its BEGIN IMMEDIATE did)."""
    if connection.dialect.name == "postgresql":
        connection.execute(LOCK_KEY, {"key": _advisory_key(case_id)})
