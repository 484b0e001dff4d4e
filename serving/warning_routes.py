"""The warning API: departments read, acknowledge (签收) and resolve (办结) their warnings; reviewers read all
and withdraw; admins also see the webhook outbox and requeue dead events.

The detail carries the case's text, masked like the reviewer page (the department must know what to act on;
webhooks never carry it). A `department` key (`name:department:key:城乡建设`) sees and acts on its own
department's warnings only:
another department's warning answers 404, as if it did not exist, and asking the list for another
department answers 403. A step that does not apply (resolving a withdrawn warning) answers 409 saying why.
Logs carry warning ids, numbers and key names, never notes or case text.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status

from features.text import mask_contact_details
from serving.auth import Principal, Role
from serving.dependencies import AdminDep, DelivererDep, WarningsDep, require_role
from serving.review_routes import INVALID, MAX_QUEUE_OFFSET, SinceQuery, UntilQuery, _bounds
from serving.routes import AUTH_ERRORS
from serving.schemas import ErrorResponse, NulFree
from serving.warning_schemas import (
    MAX_WARNING_LIMIT,
    CaseTextOut,
    OutboxEventOut,
    OutboxListOut,
    WarningAction,
    WarningClose,
    WarningDetailOut,
    WarningEventOut,
    WarningListOut,
    WarningOut,
    WarningStatus,
)
from store import IllegalTransition, OutboxRecord, WarningFilters, WarningNotFound, WarningRecord

logger = logging.getLogger(__name__)

warning_router = APIRouter(prefix="/v1/warnings", tags=["warnings"])
outbox_router = APIRouter(prefix="/v1/admin/outbox", tags=["admin"])

ReaderDep = Annotated[Principal, Depends(require_role(Role.department, Role.reviewer))]
DepartmentDep = Annotated[Principal, Depends(require_role(Role.department))]
ReviewerOnlyDep = Annotated[Principal, Depends(require_role(Role.reviewer))]

WarningIdPath = Annotated[int, Path(ge=1, le=2**62, description="The warning's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorResponse,
                                "description": "No such warning (or it is another department's)."},
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    status.HTTP_409_CONFLICT: {"model": ErrorResponse, "description": "The step does not apply to the warning "
                               "as it stands (e.g. resolving a withdrawn warning); `detail` says why."},
}


def _own_department(principal: Principal) -> str | None:
    """The department a department key is limited to; None for reviewers and admins (they see all)."""
    return principal.department if principal.role is Role.department else None


def warning_out(record: WarningRecord, now: datetime) -> WarningOut:
    return WarningOut(
        id=record.id, number=record.number, level=record.level, status=record.status,  # type: ignore[arg-type]
        source=record.source_kind, case_id=record.case_id, alert_id=record.alert_id,  # type: ignore[arg-type]
        department=record.department, district=record.district, reasons=list(record.reasons or []),
        escalation_level=record.escalation_level, acknowledge_due=record.acknowledge_due,
        resolve_due=record.resolve_due, overdue=record.overdue_deadlines(now),  # type: ignore[arg-type]
        acknowledged_at=record.acknowledged_at, closed_at=record.closed_at, issued_at=record.issued_at,
        updated_at=record.updated_at, policy_version=record.policy_version,
    )


def _detail(desk: Any, warning_id: int, principal: Principal) -> WarningDetailOut:
    try:
        detail = desk.book.get(warning_id, department=_own_department(principal))
    except WarningNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    out = warning_out(detail.warning, desk.clock())
    versions = desk.store.case_versions(detail.warning.case_id) if detail.warning.case_id else []
    case = None if not versions else CaseTextOut(title=mask_contact_details(versions[-1].title),
                                                 body=mask_contact_details(versions[-1].body))
    return WarningDetailOut(
        **out.model_dump(),
        case=case,
        events=[WarningEventOut(id=e.id, kind=e.kind, actor=e.actor, note=e.note, detail=e.detail, at=e.at)  # type: ignore[arg-type]
                for e in detail.events],
    )


@warning_router.get("", response_model=WarningListOut, summary="Warnings (预警单), newest first",
                    responses={**INVALID, **AUTH_ERRORS})
def list_warnings(
    principal: ReaderDep,
    desk: WarningsDep,
    status_: Annotated[WarningStatus | None, Query(alias="status", description="Only this status.")] = None,
    level: Annotated[Literal["red", "yellow", "green"] | None, Query(description="Only this level.")] = None,
    department: Annotated[str | None, Query(min_length=1, max_length=128,
                                            description="Only this department's."), NulFree] = None,
    district: Annotated[str | None, Query(min_length=1, max_length=64,
                                          description="Only this district's (or 'unknown')."), NulFree] = None,
    overdue: Annotated[bool | None, Query(description="true: open and past a deadline; false: not.")] = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_WARNING_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_QUEUE_OFFSET, description="Warnings to skip (paging).")] = 0,
) -> WarningListOut:
    """Filter by status, level, department, district, overdue and issue time (`since` inclusive, `until` a
    day included or a moment excluded). A department key sees its own department's warnings only."""
    own = _own_department(principal)
    if own is not None and department is not None and department != own:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"a department key sees its own department's warnings only ({own})")
    start, end = _bounds(since, until)
    filters = WarningFilters(status=status_, level=level, department=own or department, district=district,
                             overdue=overdue, since=start, until=end)
    now = desk.clock()
    items, total = desk.book.list(filters, limit=limit, offset=offset, at=now)
    return WarningListOut(items=[warning_out(w, now) for w in items], total=total, limit=limit, offset=offset)


@warning_router.get("/{warning_id}", response_model=WarningDetailOut, summary="One warning with its events",
                    responses={**NOT_FOUND, **INVALID, **AUTH_ERRORS})
def get_warning(warning_id: WarningIdPath, principal: ReaderDep, desk: WarningsDep) -> WarningDetailOut:
    return _detail(desk, warning_id, principal)


def _step(desk: Any, warning_id: int, principal: Principal, action: str, run: Any) -> WarningDetailOut:
    try:
        record = run()
    except WarningNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except IllegalTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    logger.info("warning %s id=%s %s by %s", record.number, record.id, action, principal.name)
    return _detail(desk, warning_id, principal)


@warning_router.post("/{warning_id}/acknowledge", response_model=WarningDetailOut,
                     summary="Acknowledge (签收) a warning",
                     responses={**NOT_FOUND, **CONFLICT, **INVALID, **AUTH_ERRORS})
def acknowledge_warning(
    warning_id: WarningIdPath, principal: DepartmentDep, desk: WarningsDep,
    body: Annotated[WarningAction | None, Body()] = None,
) -> WarningDetailOut:
    """The responsible department takes the warning: issued -> acknowledged (409 from any other status)."""
    note = body.note if body else None
    return _step(desk, warning_id, principal, "acknowledged", lambda: desk.book.acknowledge(
        warning_id, principal.name, note=note, department=_own_department(principal)))


@warning_router.post("/{warning_id}/resolve", response_model=WarningDetailOut,
                     summary="Resolve (办结) a warning, with a note",
                     responses={**NOT_FOUND, **CONFLICT, **INVALID, **AUTH_ERRORS})
def resolve_warning(warning_id: WarningIdPath, principal: DepartmentDep, desk: WarningsDep,
                    body: WarningClose) -> WarningDetailOut:
    """Issued or acknowledged -> resolved, with a note saying what was done; emits `warning.resolved`."""
    return _step(desk, warning_id, principal, "resolved", lambda: desk.book.resolve(
        warning_id, principal.name, note=body.note, department=_own_department(principal)))


@warning_router.post("/{warning_id}/withdraw", response_model=WarningDetailOut,
                     summary="Withdraw a warning (reviewers), with a note",
                     responses={**NOT_FOUND, **CONFLICT, **INVALID, **AUTH_ERRORS})
def withdraw_warning(warning_id: WarningIdPath, principal: ReviewerOnlyDep, desk: WarningsDep,
                     body: WarningClose) -> WarningDetailOut:
    """Issued or acknowledged -> withdrawn (a false alarm, a duplicate), with a note saying why."""
    return _step(desk, warning_id, principal, "withdrawn", lambda: desk.book.withdraw(
        warning_id, principal.name, note=body.note))


# -- the outbox, for admins ---------------------------------------------------------------------------
def _outbox_out(record: OutboxRecord) -> OutboxEventOut:
    return OutboxEventOut(
        event_id=record.event_id, event_type=record.event_type, state=record.state,  # type: ignore[arg-type]
        attempts=record.attempts, next_attempt_at=record.next_attempt_at, last_error=record.last_error,
        delivered_to=record.delivered_to, created_at=record.created_at, delivered_at=record.delivered_at,
        payload=record.payload,
    )


@outbox_router.get("", response_model=OutboxListOut, summary="Webhook events and their delivery state",
                   responses={**INVALID, **AUTH_ERRORS})
def list_outbox(
    principal: AdminDep,
    desk: WarningsDep,
    deliverer: DelivererDep,
    state: Annotated[Literal["pending", "delivered", "dead"] | None, Query(description="Only this state.")] = None,
    event_type: Annotated[str | None, Query(max_length=64, description="Only this event type."), NulFree] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_WARNING_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_QUEUE_OFFSET)] = 0,
) -> OutboxListOut:
    """Newest first: pending events (with their attempts and next try), delivered ones, and dead letters
    (with the last error) that `POST /v1/admin/outbox/{event_id}/requeue` sends again."""
    items, total = desk.outbox.events(state=state, event_type=event_type, limit=limit, offset=offset)
    return OutboxListOut(
        items=[_outbox_out(r) for r in items], total=total, counts=desk.outbox.counts(),
        subscribers=[] if deliverer is None else [s.name for s in deliverer.subscribers], limit=limit, offset=offset,
    )


@outbox_router.post("/{event_id}/requeue", response_model=OutboxEventOut, summary="Send a dead event again",
                    responses={status.HTTP_404_NOT_FOUND: {"model": ErrorResponse, "description": "No such event."},
                               **CONFLICT, **INVALID, **AUTH_ERRORS})
def requeue_event(
    event_id: Annotated[str, Path(min_length=1, max_length=36), NulFree], principal: AdminDep, desk: WarningsDep,
) -> OutboxEventOut:
    """A dead event back to pending, due now, attempts reset; 409 for an event that is not dead."""
    record = desk.outbox.requeue(event_id)
    if record is None:
        existing = desk.outbox.get(event_id)
        if existing is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook event with id {event_id!r}")
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"event {event_id} is {existing.state}; only a dead event can be requeued")
    logger.info("webhook event %s requeued by %s", event_id, principal.name)
    return _outbox_out(record)
