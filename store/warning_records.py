"""Warnings, their events and outbox rows as they leave the store: frozen dataclasses, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.tables import EarlyWarning, OutboxEvent, WarningEvent

#: Statuses a warning can be in; the first two are open.
OPEN_STATUSES = ("issued", "acknowledged")
STATUSES = (*OPEN_STATUSES, "resolved", "withdrawn")
#: Event kinds, in the words of the command centre: 预警 issued, 签收, 办结, 撤回, 更新, 督办.
EVENT_KINDS = ("issued", "acknowledged", "resolved", "withdrawn", "updated", "supervised")


@dataclass(frozen=True)
class WarningDraft:
    """What a new warning is about; `source_kind` "case" (source_id = case id) or "alert" (the alert id)."""

    source_kind: str
    source_id: str
    level: str
    department: str
    district: str
    reasons: list[dict[str, Any]]
    case_id: str | None = None
    alert_id: str | None = None


@dataclass(frozen=True)
class WarningRecord:
    id: int
    number: str
    source_kind: str
    source_id: str
    case_id: str | None
    alert_id: str | None
    level: str
    department: str
    district: str
    reasons: list[dict[str, Any]]
    status: str
    escalation_level: int
    acknowledge_due: datetime | None
    resolve_due: datetime | None
    acknowledge_overdue_at: datetime | None
    resolve_overdue_at: datetime | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    policy_version: str
    issued_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: EarlyWarning) -> WarningRecord:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    def overdue_deadlines(self, now: datetime) -> list[str]:
        """The deadlines this warning has missed at `now`: "acknowledge" (still not 签收), "resolve"."""
        missed = []
        if self.status == "issued" and self.acknowledge_due is not None and self.acknowledge_due <= now:
            missed.append("acknowledge")
        if self.open and self.resolve_due is not None and self.resolve_due <= now:
            missed.append("resolve")
        return missed


@dataclass(frozen=True)
class WarningEventRecord:
    id: int
    warning_id: int
    kind: str
    actor: str
    note: str | None
    detail: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, row: WarningEvent) -> WarningEventRecord:
        return cls(row.id, row.warning_id, row.kind, row.actor, row.note, dict(row.detail or {}), row.at)


@dataclass(frozen=True)
class WarningDetail:
    warning: WarningRecord
    events: list[WarningEventRecord] = field(default_factory=list)


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_to: list[str]
    created_at: datetime
    delivered_at: datetime | None
    claim_token: str | None = None

    @classmethod
    def of(cls, row: OutboxEvent) -> OutboxRecord:
        return cls(
            row.id, row.event_id, row.event_type, dict(row.payload or {}), row.state, row.attempts,
            row.next_attempt_at, row.last_error, list(row.delivered_to or []), row.created_at, row.delivered_at,
            row.claim_token,
        )
