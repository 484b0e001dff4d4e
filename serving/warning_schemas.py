"""Request and response bodies of the warning API (`serving.warning_routes`) and the admin outbox view."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.review_rules import MAX_NOTE_CHARS
from serving.schemas import reject_nul

WarningStatus = Literal["issued", "acknowledged", "resolved", "withdrawn"]
WarningLevel = Literal["red", "yellow", "green"]
MAX_WARNING_LIMIT = 200


class WarningOut(BaseModel):
    """A warning (预警单) as it stands: who must act (department, district), by when, and how far it escalated."""

    id: int
    number: str = Field(examples=["预警〔2026〕0157号"])
    level: str
    status: WarningStatus
    source: Literal["case", "alert"] = Field(description="What issued it: a triaged case or a hot-issue alert.")
    case_id: str | None = Field(description="The case (for an alert: the case that raised it).")
    alert_id: str | None
    department: str = Field(description="The responsible department (the router's, or the reviewer's).")
    district: str = Field(description="属地: the 区/县 the text names, from the gazetteer; 'unknown' if none.")
    reasons: list[dict[str, Any]] = Field(
        description="Rubric criteria and cue phrases (masked), or the alert's counts."
    )
    escalation_level: int = Field(description="Supervision notices (督办单) raised so far for missed deadlines.")
    acknowledge_due: datetime | None
    resolve_due: datetime | None
    overdue: list[Literal["acknowledge", "resolve"]] = Field(description="Deadlines missed as of now.")
    acknowledged_at: datetime | None
    closed_at: datetime | None = Field(description="When it was resolved or withdrawn.")
    issued_at: datetime
    updated_at: datetime
    policy_version: str


class WarningEventOut(BaseModel):
    id: int
    kind: Literal["issued", "acknowledged", "resolved", "withdrawn", "updated", "supervised"]
    actor: str = Field(description="The API key's name, or 'system' (issue at intake, the overdue sweep).")
    note: str | None
    detail: dict[str, Any] = Field(description="updated: {field: [old, new]}; supervised: the 督办单's number, "
                                   "the deadline missed and the escalation level.")
    at: datetime


class CaseTextOut(BaseModel):
    """What the responsible department must act on: the case's current text, contact details masked."""

    title: str
    body: str


class WarningDetailOut(WarningOut):
    case: CaseTextOut | None = Field(
        None, description="The case's text (masked like the reviewer page) for whoever may read the warning; "
        "never sent to webhooks.",
    )
    events: list[WarningEventOut] = Field(description="Every step, oldest first (append-only).")


class WarningListOut(BaseModel):
    items: list[WarningOut] = Field(description="Newest first.")
    total: int = Field(description="Warnings under the same filters (all pages).")
    limit: int
    offset: int


class WarningAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=MAX_NOTE_CHARS, description="What was done, or why.")

    @field_validator("note")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return reject_nul(value)


class WarningClose(WarningAction):
    note: str = Field(min_length=1, max_length=MAX_NOTE_CHARS, description="Required: what was done, or why.")

    @field_validator("note")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the note must say what was done or why, not be blank")
        return value


class OutboxEventOut(BaseModel):
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_to: list[str]
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body posted to the subscribers (no case text).")


class OutboxListOut(BaseModel):
    items: list[OutboxEventOut] = Field(description="Newest first.")
    total: int
    counts: dict[str, int] = Field(description="Events per state (all of them).")
    subscribers: list[str] = Field(description="Configured subscriber names (URLs are not shown).")
    limit: int
    offset: int
