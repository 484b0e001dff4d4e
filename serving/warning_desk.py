"""Where triaged cases, hot-issue alerts and reviews turn into warnings (预警单), and the overdue sweep.

`WarningDesk` holds the policy (`models.warning_policy`), the district gazetteer (`features.districts`) and
the store's `WarningBook` and `Outbox`. It issues warnings from what the store holds, off the request path:

* `issue_new` (the service runs it every `TRIAGE_WARNING_ISSUE_SECONDS`, 0.5 s) reads the predictions and
  alerts stored since its last round: a case whose level the policy warns on (red; yellow unless
  `issue_yellow: false`) gets a warning handed to the router's department and the district its text names;
  every hot-issue alert (a new burst alert or its escalation to red) gets one of its own, with its
  `alert.raised` event in the same transaction. A round commits 16 warnings per transaction (`ISSUE_CHUNK`),
  so it never holds the store's write lock for long, and reads only rows with no warning yet. On PostgreSQL
  replicas take turns (`WarningBook.taking_turns`): workers started together ran their rounds at the same
  moments and each drafted every new warning, one draft thrown away. Issuing on the request path
  had cost a red or yellow case 5.8 ms more at the median on SQLite (1.7x, `experiments/bench_warnings.py`);
  this way triage pays nothing and a warning exists within a round of the answer.
* `sweep` (every `TRIAGE_WARNING_SWEEP_SECONDS`) first issues what the rounds missed (`issue_missing`: a
  prediction committed out of id order on PostgreSQL, or stored while the service was down, e.g. replayed
  from the spool), then raises the supervision notices of overdue warnings.
* reviews go through `record_review`, so a reviewer's decision and the warning change it causes commit
  together (the review API, the reviewer page and bulk confirmation alike).

Issuing is idempotent per case and per alert, so replicas running the same rounds issue each warning once.
Reasons carry the rubric criteria and cue phrases (masked like everything reviewers see), never the text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from features.districts import Gazetteer, district_of, load_gazetteer
from features.text import mask_contact_details
from models.hotspots import Alert
from models.warning_policy import WarningPolicy, load_warning_policy
from store import Outbox, PredictionRecord, ReviewRecord, Store, WarningBook, WarningDraft, WarningRecord
from store.tables import utcnow

logger = logging.getLogger(__name__)

ALERT_RAISED = "alert.raised"
MAX_REASONS = 5
#: Warnings issued per transaction by a round (`WarningDesk.issue_new`).
ISSUE_CHUNK = 16


@dataclass(eq=False)
class WarningDesk:
    store: Store
    policy: WarningPolicy
    gazetteer: Gazetteer
    #: The clock of every warning time; tests replace it to move time instead of sleeping.
    clock: Callable[[], datetime] = utcnow
    book: WarningBook = field(init=False)
    outbox: Outbox = field(init=False)
    #: The last prediction and alert rows `issue_new` has read: the newest when the desk opened, at first.
    _after: tuple[int, int] = field(default=(0, 0), init=False, repr=False)
    _round: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: Rounds and sweeps run to the end since the desk opened (a caller can tell the start-up ones are done).
    rounds: int = field(default=0, init=False)
    sweeps: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        now = lambda: self.clock()  # noqa: E731  # read at each call, so replacing `clock` moves both
        self.book = WarningBook(self.store.engine, self.policy, now)
        self.outbox = Outbox(self.store.engine, now)
        self._after = self.book.last_ids()  # earlier rows are the sweep's (`issue_missing`)

    @classmethod
    def open(cls, store: Store, policy_path: str | None = None, gazetteer_path: str | None = None) -> WarningDesk:
        """The policy file (default the shipped one) and its gazetteer (or `gazetteer_path`)."""
        policy = load_warning_policy(policy_path)
        return cls(store, policy, load_gazetteer(gazetteer_path or policy.gazetteer))

    # -- from the store ------------------------------------------------------------------------------
    def issue_new(self, limit: int = 500) -> int:
        """Warnings for the predictions and alerts stored since the last round; how many were issued.

        The first round starts after what the store held when the desk opened (the sweep's `issue_missing`
        covers earlier ones); one round runs at a time in a process, and on PostgreSQL one in all replicas
        (`WarningBook.taking_turns`: a replica whose turn is taken skips the round). On PostgreSQL a row
        committed after a newer one was read is left to the sweep."""
        with self._round, self.book.taking_turns() as my_turn:
            if not my_turn:  # another replica's round is running: what it leaves, the next round reads
                return 0
            (after_prediction, after_alert), (top_prediction, top_alert) = self._after, self.book.last_ids()
            levels = ("red", "yellow") if self.policy.issue_yellow else ("red",)
            predictions = self.book.predictions_after(after_prediction, top_prediction, levels, limit)
            alerts = self.book.alerts_after(after_alert, top_alert, limit)
            items: list[tuple[WarningDraft, list[tuple[str, dict[str, Any]]]]] = [
                (self.prediction_draft(p, title, body), []) for p, title, body in predictions
            ]
            for _, record, department, title, body in alerts:
                alert = Alert.from_dict(record.payload)
                items.append((self.alert_draft(alert, title, body, department),
                              [(ALERT_RAISED, alert_payload(alert))]))
            issued: list[WarningRecord] = []
            # A few warnings per transaction: on SQLite a round's write lock would otherwise hold every triage
            # write back for the whole round (60 warnings: ~90 ms). A round cut short by an error is resumed
            # by the next one (the cursor below has not moved; issued sources are skipped).
            for start in range(0, len(items), ISSUE_CHUNK):
                issued += self.book.issue_many(items[start : start + ISSUE_CHUNK])
            # Up to the newest row seen at the start of the round, unless a full page stopped short of it.
            self._after = (
                predictions[-1][0].id if len(predictions) == limit else top_prediction,
                alerts[-1][0] if len(alerts) == limit else top_alert,
            )
            self.rounds += 1
            return len(issued)

    def prediction_draft(self, prediction: PredictionRecord, title: str | None, body: str | None) -> WarningDraft:
        return self.case_draft(prediction.case_id, title, body, prediction.risk_level or "", prediction.department,
                               stored_reasons(prediction.reasons))

    def case_draft(self, case_id: str, title: str | None, body: str | None, level: str, department: str,
                   reasons: list[dict[str, Any]]) -> WarningDraft:
        return WarningDraft("case", case_id, level, department, district_of(title, body, self.gazetteer), reasons,
                            case_id=case_id)

    def alert_draft(self, alert: Alert, title: str | None, body: str | None, department: str) -> WarningDraft:
        district = district_of(alert.place or "", None, self.gazetteer)
        if district == "unknown":
            district = district_of(title, body, self.gazetteer)
        reasons = [{"kind": "hot_issue", "text": alert.reason, "cases": alert.cases, "reporters": alert.reporters,
                    "keywords": [mask_contact_details(k) for k in alert.keywords[:8]], "burst_id": alert.burst_id}]
        return WarningDraft("alert", alert.alert_id, alert.level, department, district, reasons,
                            case_id=alert.last_case_id, alert_id=alert.alert_id)

    # -- from reviews ---------------------------------------------------------------------------------
    def review_hook(
        self, case_id: str, reviewer: str, *, level: str | None, department: str | None, note: str | None,
        model_department: str, stored: Any = None,
    ) -> Callable[[Session, Any], object]:
        """What a reviewer's decision does to the case's warning, to run in the review's own transaction
        (`Store.add_review(then=...)`): a changed level or department updates it; a case without one gets one
        when the decided level calls for it (`stored`: the reviewed prediction's reasons)."""
        draft = None
        if level is not None and self.policy.issues(level):
            versions = self.store.case_versions(case_id)
            text = versions[-1] if versions else None
            reasons = [{"kind": "review", "text": f"level {level} decided by a reviewer"}, *stored_reasons(stored)]
            draft = self.case_draft(case_id, text.title if text else None, text.body if text else None, level,
                                    department or model_department, reasons[:MAX_REASONS])

        def apply(session: Session, review: Any) -> None:
            record, changed = self.book.apply_review(session, case_id, reviewer, level=level, department=department,
                                                     note=note, draft=draft)
            if changed and record is not None:
                logger.info("warning %s follows review id=%s of case_id=%s", record.number, review.id, case_id)

        return apply

    # -- periodic -------------------------------------------------------------------------------------
    def sweep(self, at: datetime | None = None) -> list[WarningRecord]:
        """Issue what is missing, then raise the supervision notices of overdue warnings; the escalated ones."""
        self.issue_missing()
        escalated = self.book.sweep_overdue(at)
        if escalated:
            logger.info("overdue sweep: %d supervision notice(s)", len(escalated))
        self.sweeps += 1
        return escalated

    def issue_missing(self, lookback: timedelta = timedelta(days=2), limit: int = 500) -> int:
        """Warnings for the recent predictions and alerts that call for one and have none (a write lost to an
        outage after the case was answered); how many were issued."""
        since = self.clock() - lookback
        issued = 0
        levels = ("red", "yellow") if self.policy.issue_yellow else ("red",)
        for prediction, title, body in self.book.unwarned_predictions(levels, since, limit=limit):
            _, new = self.book.issue(self.prediction_draft(prediction, title, body))
            issued += new
        for alert_record, department, title, body in self.book.unwarned_alerts(since, limit=limit):
            alert = Alert.from_dict(alert_record.payload)
            _, new = self.book.issue(self.alert_draft(alert, title, body, department),
                                     also=[(ALERT_RAISED, alert_payload(alert))])
            issued += new
        if issued:
            logger.warning("issued %d warning(s) missed at intake", issued)
        return issued


def record_review(
    store: Store, desk: WarningDesk | None, prediction: PredictionRecord, reviewer: str, *,
    department: str | None, level: str | None, note: str | None = None,
) -> ReviewRecord:
    """A reviewer's decision and what it does to the case's warning, committed together: the review API, the
    reviewer page and bulk confirmation all record reviews through here. ValueError: not the case's prediction."""
    hook = None if desk is None else desk.review_hook(
        prediction.case_id, reviewer, level=level, department=department, note=note,
        model_department=prediction.department, stored=prediction.reasons,
    )
    return store.add_review(prediction.case_id, prediction.id, reviewer, decided_department=department,
                            decided_level=level, note=note, then=hook)


def alert_payload(alert: Alert) -> dict[str, Any]:
    """What subscribers are told of a hot-issue alert: counts, keywords (masked) and place, no case text."""
    return {
        "alert": {
            "id": alert.alert_id, "burst_id": alert.burst_id, "level": alert.level, "raised_at": alert.raised_at,
            "reason": alert.reason, "place": alert.place, "cases": alert.cases, "reporters": alert.reporters,
            "keywords": [mask_contact_details(k) for k in alert.keywords[:8]],
            "case_ids": list(alert.member_case_ids[-20:]),
        }
    }


def _reason(kind: str, text: str | None, criterion: str | None = None, category: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "text": mask_contact_details(text or "")}
    if criterion:
        out["criterion"] = criterion
    if category:
        out["category"] = category
    return out


def stored_reasons(stored: Any) -> list[dict[str, Any]]:
    """A stored prediction's risk reasons (and its hot issue) as a warning carries them, at most five."""
    risk = stored.get("risk") if isinstance(stored, dict) else None
    reasons = _unique([_reason(str(r.get("kind", "cue")), r.get("text"), r.get("criterion"), r.get("category"))
                       for r in (risk or []) if isinstance(r, dict)])
    hot = stored.get("hot_issue") if isinstance(stored, dict) else None
    if not isinstance(hot, dict) or not hot.get("id"):
        return reasons[:MAX_REASONS]
    joined = {"kind": "hot_issue", "text": f"joined hot issue {hot['id']}", "cases": hot.get("cases")}
    return [*reasons[: MAX_REASONS - 1], joined]


def _unique(reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (kind, text) once: a cue phrase found in the title and the body is one reason."""
    seen: set[tuple[str, str]] = set()
    out = []
    for reason in reasons:
        key = (reason["kind"], reason["text"])
        if key not in seen:
            seen.add(key)
            out.append(reason)
    return out
