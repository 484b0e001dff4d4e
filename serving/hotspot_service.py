"""The live hot-issue detector of a serving process, kept in step with the store.

Members of bursts (from their second case on) and every alert are stored (both idempotent),
and the detector's snapshot is saved every `snapshot_every` cases and at shutdown (a snapshot holds the
idf counts too, about 0.6 MB after 2,000 cases, so not after every case; a restart replays at most
`snapshot_every` cases, about 1.5 ms each). On start-up the
detector is restored from the latest snapshot and the cases stored after it are replayed in the order
they were stored (every triaged case is in the cases table): the state survives a restart, and
`triage hotspots` can rebuild it from history.

The detector is not thread-safe; one lock serialises `observe` (it takes well under a millisecond
beside tokenisation). Snapshots are copied under that lock and written by a thread of their own.

Writes go through `sink`: the store itself, or the app's `serving.spool.DurableWriter`, which spools
members and alerts while the database is unreachable (so an outage neither fails the request nor loses
an alert) and skips the snapshot then (a restart replays the cases table instead).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from models.hotspots import Assignment, CaseEvent, HotspotConfig, HotspotDetector
from serving.store import Store

logger = logging.getLogger(__name__)


class HotspotSink(Protocol):
    """Where members, alerts and snapshots are written (`Store` or `serving.spool.DurableWriter`)."""

    def add_hotspot_member(
        self, burst_id: str, case_id: str, observed_at: datetime, reporter_id: str | None = None
    ) -> Any: ...

    def add_alert(
        self, alert_id: str, burst_id: str, level: str, raised_at: datetime, payload: Mapping[str, Any]
    ) -> Any: ...

    def save_snapshot(self, payload: Mapping[str, Any], *, detector_version: str | None = None) -> Any: ...


class HotspotService:
    def __init__(
        self, store: Store, detector: HotspotDetector, *, snapshot_every: int = 1000, sink: HotspotSink | None = None
    ) -> None:
        self.store = store
        self.sink: HotspotSink = sink if sink is not None else store
        self.detector = detector
        self.snapshot_every = snapshot_every
        self._since_snapshot = 0
        self._lock = threading.Lock()
        self._saver: threading.Thread | None = None

    @classmethod
    def restore(
        cls, store: Store, config: HotspotConfig, *, snapshot_every: int = 1000, sink: HotspotSink | None = None
    ) -> HotspotService:
        snap = store.latest_snapshot(config.version)
        detector = HotspotDetector.from_snapshot(snap.payload) if snap else HotspotDetector(config)
        replayed = 0
        for case in store.cases_received_since(snap.created_at if snap else None):
            observed = _naive_utc(case.created_at or case.received_at)
            detector.observe(CaseEvent(case.case_id, observed, case.title, case.body, case.reporter_id, None))
            replayed += 1
        logger.info(
            "hot-issue detector restored from %s plus %d replayed cases (%d live bursts)",
            f"snapshot {snap.id}" if snap else "an empty state", replayed, detector.burst_count,
        )
        return cls(store, detector, snapshot_every=snapshot_every, sink=sink)

    def observe(
        self,
        case_id: str,
        created_at: datetime | None,
        title: str,
        body: str,
        reporter_id: str | None,
        votes: int | None = None,
    ) -> tuple[Assignment, str | None]:
        """Assign a case to a burst; returns the assignment and the burst's alert level after it."""
        observed = _naive_utc(created_at) if created_at else datetime.now(UTC).replace(tzinfo=None)
        with self._lock:
            assignment = self.detector.observe(CaseEvent(case_id, observed, title, body, reporter_id, votes))
            level = self.detector.burst_level(assignment.burst_id)
            if assignment.burst_id and assignment.cases >= 2:
                # A burst becomes a hot issue with its second case: record its members then (the first
                # one too), and each later one as it joins. Lone cases need no row: a restart replays the
                # cases table, not this one.
                joined = (
                    self.detector.burst_member_details(assignment.burst_id)
                    if assignment.cases == 2
                    else [(case_id, observed, reporter_id)]
                )
                for member_id, member_time, member_reporter in joined:
                    self.sink.add_hotspot_member(assignment.burst_id, member_id, member_time, member_reporter)
            if assignment.alert is not None:
                alert = assignment.alert
                self.sink.add_alert(alert.alert_id, alert.burst_id, alert.level, alert.raised_at, alert.to_dict())
            self._since_snapshot += 1
            due = self._since_snapshot >= self.snapshot_every and self._saver is None
            if due:
                # Taken under the lock (a consistent copy); written by a thread of its own, so the request
                # that happens to be the 1,000th does not wait for a megabytes-large database write.
                payload, self._since_snapshot = self.detector.snapshot(), 0
                self._saver = threading.Thread(target=self._save, args=(payload,), name="hotspot-snapshot")
                self._saver.start()
        return assignment, level

    def _save(self, payload: Mapping[str, Any]) -> None:
        try:
            saved = self.sink.save_snapshot(payload, detector_version=self.detector.config.version)
        except Exception:  # a failed snapshot costs a longer replay at the next start, never a request
            logger.exception("could not save the hot-issue snapshot; it is tried again later")
            saved = False
        with self._lock:
            if saved is False:
                # Skipped (database down) or failed: try again at shutdown or a few cases later.
                self._since_snapshot = max(self._since_snapshot, self.snapshot_every - 100)
            if self._saver is threading.current_thread():
                self._saver = None

    def close(self) -> None:
        """Wait for a snapshot being written, then save the state so a restart replays nothing."""
        saver = self._saver
        if saver is not None:
            saver.join()
        with self._lock:
            if self._since_snapshot:
                payload, self._since_snapshot = self.detector.snapshot(), 0
            else:
                return
        saved = self.sink.save_snapshot(payload, detector_version=self.detector.config.version)
        if saved is False:
            logger.warning("the hot-issue snapshot was not saved at shutdown; the next start replays the cases")


def _naive_utc(value: datetime) -> datetime:
    """The detector works on naive UTC times; aware times are converted, naive ones taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value
