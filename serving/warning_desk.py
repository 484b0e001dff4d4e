"""Where triage, the hot-issue detector and reviews turn into warnings (预警单), and the overdue sweep.

`WarningDesk` holds the policy (`models.warning_policy`), the district gazetteer (`features.districts`) and
the store's `WarningBook` and `Outbox`. The triage path calls `after_triage` once a case's answer is known:

* a case whose level the policy warns on (red; yellow unless `issue_yellow: false`) gets a warning handed to
  the router's department and the district its text names;
* a hot-issue alert raised by the case (a new burst alert or its escalation to red) gets a warning of its
  own, with the `alert.raised` event in the same transaction.

Reviews go through `record_review`, so a reviewer's decision and the warning change it causes commit together.
Issuing is idempotent per case and per alert. A warning that could not be written (the database went away
after the prediction was spooled) is not lost: `sweep` first issues the warnings the store's predictions
and alerts call for and lack (`issue_missing`), then raises the overdue ones' supervision notices.

Reasons carry the rubric criteria and cue phrases (masked like everything reviewers see), never the text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from features.districts import Gazetteer, district_of, load_gazetteer
from features.text import mask_contact_details
from models.hotspots import Alert
from models.warning_policy import WarningPolicy, load_warning_policy
from serving.schemas import CaseTriage, TriageRequest
from store import Outbox, PredictionRecord, ReviewRecord, Store, WarningBook, WarningDraft, WarningRecord
from store.tables import utcnow

logger = logging.getLogger(__name__)

ALERT_RAISED = "alert.raised"
MAX_REASONS = 5


@dataclass(eq=False)
class WarningDesk:
    store: Store
    policy: WarningPolicy
    gazetteer: Gazetteer
    #: The clock of every warning time; tests replace it to move time instead of sleeping.
    clock: Callable[[], datetime] = utcnow
    book: WarningBook = field(init=False)
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        now = lambda: self.clock()  # noqa: E731  # read at each call, so replacing `clock` moves both
        self.book = WarningBook(self.store.engine, self.policy, now)
        self.outbox = Outbox(self.store.engine, now)

    @classmethod
    def open(cls, store: Store, policy_path: str | None = None, gazetteer_path: str | None = None) -> WarningDesk:
        """The policy file (default the shipped one) and its gazetteer (or `gazetteer_path`)."""
        policy = load_warning_policy(policy_path)
        return cls(store, policy, load_gazetteer(gazetteer_path or policy.gazetteer))

    # -- from triage ----------------------------------------------------------------------------------
    def after_triage(self, case: TriageRequest, result: CaseTriage, alert: Alert | None) -> list[WarningRecord]:
        """The warnings this triaged case issues (none for a green case without a new alert)."""
        issued = []
        level = result.risk.level if result.risk else None
        if self.policy.issues(level):
            record, new = self.book.issue(self.case_draft(case.case_id, case.title, case.body, level or "",
                                                          result.department.label, _case_reasons(result)))
            if new:
                issued.append(record)
        if alert is not None:
            record, new = self.book.issue(
                self.alert_draft(alert, case.title, case.body, result.department.label),
                also=[(ALERT_RAISED, alert_payload(alert))],
            )
            if new:
                issued.append(record)
        return issued

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
        return escalated

    def issue_missing(self, lookback: timedelta = timedelta(days=2), limit: int = 500) -> int:
        """Warnings for the recent predictions and alerts that call for one and have none (a write lost to an
        outage after the case was answered); how many were issued."""
        since = self.clock() - lookback
        issued = 0
        levels = ("red", "yellow") if self.policy.issue_yellow else ("red",)
        for prediction, title, body in self.book.unwarned_predictions(levels, since, limit=limit):
            reasons = stored_reasons(prediction.reasons)
            _, new = self.book.issue(self.case_draft(prediction.case_id, title, body, prediction.risk_level or "",
                                                     prediction.department, reasons))
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


def _case_reasons(result: CaseTriage) -> list[dict[str, Any]]:
    """The level's reasons as the warning carries them: rubric criterion and cue phrases first, at most five."""
    if result.risk is None:
        return []
    reasons = _unique([_reason(r.kind, r.text, r.criterion, r.category) for r in result.risk.reasons])
    if result.hot_issue is None:
        return reasons[:MAX_REASONS]
    hot = {"kind": "hot_issue", "text": f"joined hot issue {result.hot_issue.id}", "cases": result.hot_issue.cases}
    return [*reasons[: MAX_REASONS - 1], hot]


def stored_reasons(stored: Any) -> list[dict[str, Any]]:
    """A stored prediction's risk reasons as a warning carries them."""
    risk = stored.get("risk") if isinstance(stored, dict) else None
    return _unique([_reason(str(r.get("kind", "cue")), r.get("text"), r.get("criterion"), r.get("category"))
                    for r in (risk or []) if isinstance(r, dict)])[:MAX_REASONS]


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
