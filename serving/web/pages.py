"""The reviewer pages: login, the queue, one case (confirm or change), and the dashboard.

Server-rendered Jinja2 (autoescaped), forms posted to the server, post/redirect/get with a one-time
message. Pages authenticate by the session cookie (`serving.web.session`); a request that carries an
`X-API-Key` header is checked by that key instead, like the API. Every session-authenticated POST must
carry the session's CSRF token. Case text never reaches a log line: logs name the case id, the reviewer
and the decision only.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from features.csv_safety import csv_text
from models.mlflow_model import LoadedModel
from serving.auth import API_KEY_HEADER, KeyRing, Principal, Role
from serving.bulk_review import CLAIMED, NOT_PENDING, confirm_many
from serving.dependencies import (
    KeyRingDep,
    ModelStateDep,
    OpenStoreDep,
    PrincipalDep,
    ReviewerDep,
    SessionSecretDep,
    SettingsDep,
    StoreDep,
    WarningsDep,
    context_of,
)
from serving.drift_report import NoReferenceError, recent_drift_report
from serving.reports.build import build_report
from serving.reports.pdf import PdfError, html_to_pdf
from serving.reports.period import PERIODS, TITLES, PeriodError
from serving.reports.render import render_body, render_document
from serving.request_guard import client_of
from serving.retrain_status import last_retraining
from serving.review_rules import LEVELS, MAX_NOTE_CHARS, Decision, decide, known_departments
from serving.schemas import time_in_range
from serving.state import describe_model
from serving.warning_desk import record_review
from serving.web import charts
from serving.web.forms import FormError, read_form, read_form_lists
from serving.web.present import (
    CRITERION_NAMES,
    DISPLAY_TZ,
    LEVEL_NAMES,
    PRIORITY_NAMES,
    criterion_label,
    highlight,
    iso_local_time,
    local_time,
    metric_name,
    percent,
    reason_views,
    top_departments,
)
from serving.web.session import (
    CSRF_FIELD,
    csrf_ok,
    csrf_token,
    open_session,
    pop_flash,
    session_id,
    session_principal,
    set_flash,
)
from store import CaseDetail, PredictionRecord, Store
from store.claims import ClaimConflict
from store.review_queries import SearchRefused, search_terms

logger = logging.getLogger(__name__)

PAGE_PREFIXES = ("/review", "/dashboard", "/reports")
LOGIN_PATH = "/review/login"
QUEUE_PAGE_SIZE = 50
STALE_PAGE = "页面已过期（CSRF 校验失败），请刷新页面后重试。"
#: How far ahead the case page looks in the queue for the next pending case.
NEXT_LOOKAHEAD = 500

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals.update(
    LEVEL_NAMES=LEVEL_NAMES,
    PRIORITY_NAMES=PRIORITY_NAMES,
    CRITERION_NAMES=CRITERION_NAMES,
    CSRF_FIELD=CSRF_FIELD,
)
templates.env.filters.update(local_time=local_time, percent=percent, criterion_label=criterion_label,
                             iso_local_time=iso_local_time, metric_name=metric_name)


class LoginRequired(Exception):
    """No valid session on a page: answered by a 303 to the login form (see `install`)."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def current_session(request: Request, ring: KeyRing, secret: str, store: Store | None) -> Principal | None:
    """The session's principal, unless it expired or was logged out (a store read: call off the event loop)."""
    revoked = store.web_session_revoked if store is not None else None
    return session_principal(request, ring, secret, revoked)


def _session_parts(request: Request) -> tuple[KeyRing, str, Store | None]:
    """Key ring, session secret and (when open) store for the login and logout forms: plain Starlette
    routes, which get no FastAPI dependencies, so they read the app's context themselves."""
    context = context_of(request.app)
    assert context.session_secret is not None  # set by `serving.web.install`, which adds these routes
    return context.keyring, context.session_secret, None if context.services is None else context.services.store


async def page_session(request: Request, ring: KeyRingDep, secret: SessionSecretDep, store: OpenStoreDep) -> None:
    """Put the session's principal on `request.state` for `require_role`, or send the browser to log in.

    A request with an `X-API-Key` header is left to `require_role` (401/403 as on the API).
    """
    if request.headers.get(API_KEY_HEADER):
        return
    principal = await run_in_threadpool(current_session, request, ring, secret, store)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else request.url.path)
    request.state.principal = principal


def via_session(request: Request) -> bool:
    return not request.headers.get(API_KEY_HEADER)


router = APIRouter(include_in_schema=False, dependencies=[Depends(page_session)])
#: Login and logout answer without a session (plain Starlette routes, outside the role-checked table).
public_router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    principal: Principal | None = getattr(request.state, "principal", None)
    base = {
        "principal": principal,
        "csrf_token": csrf_token(request),
        "flash": pop_flash(request),
        "is_admin": principal is not None and principal.role is Role.admin,
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "message": message}, status_code)


# -- login ------------------------------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """Only a path of this app's pages: never another host (no open redirect)."""
    if not value:
        return "/review"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/review"
    if not parts.path.startswith(PAGE_PREFIXES) or parts.path.startswith(LOGIN_PATH):
        return "/review"
    return value


async def login_page(request: Request) -> Response:
    ring, secret, store = _session_parts(request)
    if request.method == "GET":
        next_url = safe_next(request.query_params.get("next"))
        if await run_in_threadpool(current_session, request, ring, secret, store) is not None:
            return RedirectResponse(next_url, status.HTTP_303_SEE_OTHER)  # already logged in
        return render(request, "login.html", {"next": next_url, "error": None})
    try:
        form = await read_form(request)
    except FormError:
        return error_page(request, status.HTTP_400_BAD_REQUEST, "请求无效", "请从登录页面提交表单。")
    next_url = safe_next(form.get("next"))
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        expired = {"next": next_url, "error": "页面已过期，请重新输入密钥。"}
        return render(request, "login.html", expired, status.HTTP_403_FORBIDDEN)
    principal = ring.authenticate(form.get("api_key", "").strip())
    if principal is None:
        context_of(request.app).auth_failures.record(client_of(request.scope))
        logger.info("web login refused: unknown key")
        return render(request, "login.html", {"next": next_url, "error": "密钥无效。"}, status.HTTP_401_UNAUTHORIZED)
    if not principal.may(Role.reviewer):
        logger.info("web login refused: %s has role %s", principal.name, principal.role.value)
        return error_page(
            request, status.HTTP_403_FORBIDDEN, "无权访问",
            f"“{principal.role.value}”角色的密钥不能登录审核页面，请使用审核员或管理员密钥。",
        )
    open_session(request, principal, ring, secret)
    logger.info("web login: %s (%s)", principal.name, principal.role.value)
    return RedirectResponse(next_url, status.HTTP_303_SEE_OTHER)


async def logout(request: Request) -> Response:
    try:
        form = await read_form(request)
    except FormError:
        form = {}
    if request.session.get("name") and not csrf_ok(request, form.get(CSRF_FIELD)):
        return error_page(request, status.HTTP_403_FORBIDDEN, "请求无效", "页面已过期，请刷新后再退出。")
    sid, store = session_id(request), _session_parts(request)[2]
    if sid is not None and store is not None:
        # Recorded, not just forgotten by this browser: a copy of the cookie stops working too.
        await run_in_threadpool(store.revoke_web_session, sid)
    request.session.clear()
    return RedirectResponse(LOGIN_PATH, status.HTTP_303_SEE_OTHER)


public_router.add_route(LOGIN_PATH, login_page, methods=["GET", "POST"], include_in_schema=False)
public_router.add_route("/review/logout", logout, methods=["POST"], include_in_schema=False)


# -- the queue --------------------------------------------------------------------------------------
def _day_start(value: date | None, plus_days: int = 0) -> datetime | None:
    """Midnight (Beijing time) at the start of `value` (+ days), for the queue's date filters."""
    if value is None:
        return None
    return datetime.combine(value + timedelta(days=plus_days), time.min, tzinfo=DISPLAY_TZ)


def _filter_departments(model: LoadedModel | None, store: Store) -> list[str]:
    """Departments the queue can be filtered by: the model's classes, and any that stored predictions name."""
    known = list(model.bundle.classes) if model is not None else []
    for name in store.known_departments():
        if name not in known:
            known.append(name)
    return known


def _parse_date(value: str | None) -> date | None:
    """A filter day, or None (no filter) for one that is not a date or lies outside the store's range
    (the end of 9999-12-31 is no date); the page shows the filter as it was read."""
    try:
        day = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    if day is None or not time_in_range(datetime.combine(day, time.min, tzinfo=DISPLAY_TZ)):
        return None
    return day


def _queue_filters(
    level: Annotated[str | None, Query()] = None,
    department: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query()] = None,
    until: Annotated[str | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """The queue's filters (query parameters of the queue and its export) for the store, as the form shows
    them, and why a search was refused."""
    level = level if level in LEVELS else None
    department = department if department and "\x00" not in department else None  # NUL: PostgreSQL refuses it
    q = " ".join(q.replace("\x00", " ").split()) if q else None
    search_error = None
    try:
        search_terms(q)
    except SearchRefused:
        search_error, q = "不能按电话号码、身份证号或邮箱搜索（审核页面中这些信息已隐藏）。", None
    since_day, until_day = _parse_date(since), _parse_date(until)
    filters: dict[str, Any] = {
        "level": level, "department": department, "since": _day_start(since_day), "until": _day_start(until_day, 1),
        "search": q,
    }
    shown = {"level": level or "", "department": department or "", "q": q or "",
             "since": since_day.isoformat() if since_day else "", "until": until_day.isoformat() if until_day else ""}
    return filters, shown, search_error


QueueFilters = Annotated[tuple[dict[str, Any], dict[str, str], str | None], Depends(_queue_filters)]


@router.get("/review", response_class=HTMLResponse)
def queue_page(
    request: Request,
    principal: ReviewerDep,
    store: StoreDep,
    queue_filters: QueueFilters,
    state: ModelStateDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    filters, shown, search_error = queue_filters
    departments = _filter_departments(state.model, store)
    counts = store.review_queue_counts(**filters)
    total = sum(counts.values())
    items = store.review_queue(**filters, limit=QUEUE_PAGE_SIZE, offset=(page - 1) * QUEUE_PAGE_SIZE)
    pages = max(1, -(-total // QUEUE_PAGE_SIZE))
    query = {k: v for k, v in shown.items() if v}
    claims = store.live_claims([item.case_id for item in items])

    def page_url(n: int) -> str:
        return "/review?" + urlencode({**query, "page": n})

    return render(
        request,
        "queue.html",
        {
            "items": items,
            "counts": counts,
            "total": total,
            "departments": departments,
            "filters": shown,
            "search_error": search_error,
            "claims": claims,
            "reviewer": principal.name,
            "back_url": page_url(page) if page > 1 else "/review" + ("?" + urlencode(query) if query else ""),
            "export_url": "/review/export.csv" + ("?" + urlencode(query) if query else ""),
            "page": page,
            "pages": pages,
            "prev_url": page_url(page - 1) if page > 1 else None,
            "next_url": page_url(page + 1) if page < pages else None,
            "first_index": (page - 1) * QUEUE_PAGE_SIZE,
        },
    )


#: Rows an export of the filtered queue holds at most (a spreadsheet, not a data dump).
EXPORT_LIMIT = 10_000
EXPORT_COLUMNS = {
    "case_id": "案件编号", "priority": "优先级", "risk_level": "风险等级", "department": "部门",
    "department_confidence": "置信度", "needs_review": "路由待复核", "title": "标题", "body_preview": "正文摘要",
    "received_at": "接收时间（北京时间）", "hot_issue_id": "热点", "claimed_by": "认领人",
}


@router.get("/review/export.csv")
def export_queue(
    request: Request,
    principal: ReviewerDep,
    store: StoreDep,
    queue_filters: QueueFilters,
) -> Response:
    """The filtered queue as CSV for a spreadsheet (UTF-8 with BOM, formula-safe cells); contact numbers
    masked as on the page; at most `EXPORT_LIMIT` rows."""
    filters = queue_filters[0]
    items = store.review_queue(**filters, limit=EXPORT_LIMIT)
    held = store.live_claims([item.case_id for item in items])
    rows = [
        {"case_id": i.case_id, "priority": PRIORITY_NAMES[i.priority],
         "risk_level": LEVEL_NAMES.get(i.risk_level or "", ""),
         "department": i.department, "department_confidence": round(i.department_confidence, 4),
         "needs_review": "是" if i.needs_review else "否", "title": i.title, "body_preview": i.body_preview,
         "received_at": local_time(i.received_at), "hot_issue_id": i.hot_issue_id or "",
         "claimed_by": held[i.case_id].reviewer if i.case_id in held else ""}
        for i in items
    ]
    frame = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS)).rename(columns=EXPORT_COLUMNS)
    logger.info("web queue export reviewer=%s rows=%d", principal.name, len(rows))
    stamp = datetime.now(DISPLAY_TZ).strftime("%Y%m%d-%H%M")
    return Response(csv_text(frame), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="review-queue-{stamp}.csv"'})


@router.post("/review/confirm", response_class=HTMLResponse)
async def bulk_confirm(request: Request, principal: ReviewerDep, store: StoreDep, warnings: WarningsDep) -> Response:
    """The queue's "confirm selected": each checked prediction confirmed as one review, or skipped with why."""
    try:
        form = await read_form_lists(request, max_fields=QUEUE_PAGE_SIZE + 8)
    except FormError:
        return error_page(request, status.HTTP_400_BAD_REQUEST, "请求无效", "请从审核队列页面提交表单。")
    if via_session(request) and not csrf_ok(request, (form.get(CSRF_FIELD) or [""])[-1]):
        return error_page(request, status.HTTP_403_FORBIDDEN, "请求无效", STALE_PAGE)
    ids = [int(v) for v in form.get("prediction_id", []) if v.isdigit() and len(v) < 19]
    back = safe_next((form.get("back") or ["/review"])[-1])
    if not ids:
        set_flash(request, "没有勾选案件。")
        return RedirectResponse(back, status.HTTP_303_SEE_OTHER)
    outcome = await run_in_threadpool(confirm_many, store, ids, principal.name, warnings)
    message = f"已批量确认 {len(outcome.confirmed)} 件。"
    claimed = [f"{case_id}（{holder} 已认领）" for _, case_id, reason, holder in outcome.skipped if reason == CLAIMED]
    gone = sum(1 for _, _, reason, _ in outcome.skipped if reason == NOT_PENDING)
    if claimed:
        message += " 跳过他人已认领的：" + "、".join(claimed) + "。"
    if gone:
        message += f" 跳过 {gone} 件已被审核或已有新预测的案件。"
    set_flash(request, message)
    return RedirectResponse(back, status.HTTP_303_SEE_OTHER)


async def _case_form(request: Request) -> dict[str, str] | Response:
    """A form posted from a case page, or the error page to answer instead (not a small form: 400; a
    session without the page's CSRF token: 403)."""
    try:
        form = await read_form(request)
    except FormError:
        return error_page(request, status.HTTP_400_BAD_REQUEST, "请求无效", "请从案件页面提交表单。")
    if via_session(request) and not csrf_ok(request, form.get(CSRF_FIELD)):
        return error_page(request, status.HTTP_403_FORBIDDEN, "请求无效", STALE_PAGE)
    return form


@router.post("/review/cases/{case_id:path}/claim", response_class=HTMLResponse)
async def claim_case_page(request: Request, case_id: str, principal: ReviewerDep, store: StoreDep) -> Response:
    """Claim (action=claim) or let go (action=release) of a case from its page."""
    form = await _case_form(request)
    if isinstance(form, Response):
        return form
    if "\x00" in case_id or await run_in_threadpool(store.latest_prediction, case_id) is None:
        return _not_found(request, case_id.replace("\x00", ""))
    if form.get("action") == "release":
        released = await run_in_threadpool(store.release_case, case_id, principal.name)
        set_flash(request, "已释放该案件。" if released else "该案件不在你的认领中。")
    else:
        try:
            held = await run_in_threadpool(store.claim_case, case_id, principal.name)
        except ClaimConflict as exc:
            until = local_time(exc.claim.expires_at, "%H:%M")
            set_flash(request, f"该案件已由 {exc.claim.reviewer} 认领（至 {until}）。")
        else:
            set_flash(request, f"已认领，{local_time(held.expires_at, '%H:%M')} 前其他审核员不会批量处理它。")
    return RedirectResponse(f"/review/cases/{quote(case_id, safe='/')}", status.HTTP_303_SEE_OTHER)


# -- one case ---------------------------------------------------------------------------------------
def _next_case(store: Store, case_id: str) -> str | None:
    """The pending case after this one in queue order; the first pending one if this is not queued."""
    ids = [item.case_id for item in store.review_queue(limit=NEXT_LOOKAHEAD)]
    if case_id in ids:
        position = ids.index(case_id)
        later = ids[position + 1:] or ids[:position]
        return later[0] if later else None
    return ids[0] if ids else None


def _case_context(store: Store, detail: CaseDetail, model: LoadedModel | None) -> dict[str, Any]:
    latest = detail.latest_prediction
    version = detail.latest_version
    assert latest is not None and version is not None
    predictions_by_id = {p.id: p for p in detail.predictions}
    audit: list[dict[str, Any]] = []
    for p in detail.predictions:
        who = f"模型 {p.model_name} v{p.model_version or '?'}"
        audit.append({"when": p.created_at, "kind": "prediction", "who": who,
                      "department": p.department, "level": p.risk_level, "note": None, "prediction_id": p.id,
                      "confidence": p.department_confidence})
    for r in detail.reviews:
        judged = predictions_by_id.get(r.prediction_id)
        agreed = judged is not None and r.decided_department == judged.department and (
            r.decided_level == judged.risk_level)
        audit.append({"when": r.created_at, "kind": "review", "who": r.reviewer, "department": r.decided_department,
                      "level": r.decided_level, "note": r.note, "prediction_id": r.prediction_id,
                      "decision": "确认" if agreed else "修改"})
    audit.sort(key=lambda e: (e["when"], 0 if e["kind"] == "prediction" else 1))
    hot_issue = (latest.reasons or {}).get("hot_issue") if isinstance(latest.reasons, dict) else None
    return {
        "detail": detail,
        "prediction": latest,
        "version": version,
        "text": highlight(version.title, version.body, latest.reasons),
        "reasons": reason_views(latest.reasons),
        "top": top_departments(latest.top),
        "hot_issue_id": latest.hot_issue_id,
        "hot_issue": hot_issue,
        "alert": detail.alert,
        "burst_case_ids": [c for c in detail.burst_case_ids if c != detail.case_id],
        "audit": list(reversed(audit)),
        "departments": known_departments(model, store),
        "pending": detail.pending,
        # The latest review of the prediction shown (a review of an older text does not decide this one).
        "decision": next((r for r in reversed(detail.reviews) if r.prediction_id == latest.id), None),
        "next_case": _next_case(store, detail.case_id),
        "versions": len(detail.versions),
    }


def _not_found(request: Request, case_id: str) -> HTMLResponse:
    return error_page(request, status.HTTP_404_NOT_FOUND, "未找到案件", f"没有编号为 {case_id} 的案件。")


@router.get("/review/cases/{case_id:path}", response_class=HTMLResponse)
def case_page(
    request: Request, case_id: str, principal: ReviewerDep, store: StoreDep, state: ModelStateDep
) -> HTMLResponse:
    if "\x00" in case_id:  # no case has one, and PostgreSQL would refuse the lookup (a 500)
        return _not_found(request, case_id.replace("\x00", ""))
    detail = store.case_detail(case_id)
    if detail is None or detail.latest_prediction is None:
        return _not_found(request, case_id)
    context = _case_context(store, detail, state.model)
    claim = store.live_claims([detail.case_id]).get(detail.case_id)
    return render(request, "case.html", {**context, "errors": [], "form": {}, "claim": claim,
                                         "reviewer": principal.name})


#: How the page words `review_rules` problems, for a reviewer.
_PROBLEM_TEXT = {
    "unknown_action": "未知的操作。",
    "confirm_changes_department": "确认时不能修改部门：请用“保存修改”。",
    "confirm_changes_level": "确认时不能修改风险等级：请用“保存修改”。",
    "nothing_changed": "部门和风险等级都与模型相同：请修改至少一项，或直接点“确认”。",
    "missing_note": "修改时必须填写备注，说明理由。",
    "note_too_long": f"备注不能超过 {MAX_NOTE_CHARS} 字。",
    "unknown_department": "请选择列表中的部门。",
    "unknown_level": "风险等级只能是红、黄或绿。",
}


def _decision(form: dict[str, str], latest: PredictionRecord, departments: list[str]) -> Decision | list[str]:
    """The review to store (`serving.review_rules.decide`, as the API decides), or what is wrong, in Chinese."""
    decided = decide(
        form.get("action", ""),
        form.get("department", "").strip() if form.get("action") == "change" else None,
        form.get("level", "").strip() if form.get("action") == "change" else None,
        form.get("note"),
        model_department=latest.department,
        model_level=latest.risk_level,
        known_departments=departments,
    )
    if isinstance(decided, Decision):
        return decided
    return list(dict.fromkeys(_PROBLEM_TEXT[p.code] for p in decided))  # nothing_changed names two fields


@router.post("/review/cases/{case_id:path}/reviews", response_class=HTMLResponse)
async def post_review(
    request: Request, case_id: str, principal: ReviewerDep, store: StoreDep, state: ModelStateDep,
    warnings: WarningsDep,
) -> Response:
    form = await _case_form(request)
    if isinstance(form, Response):
        return form
    if "\x00" in case_id:  # as in case_page
        return _not_found(request, case_id.replace("\x00", ""))
    detail = await run_in_threadpool(store.case_detail, case_id)
    if detail is None or detail.latest_prediction is None:
        return _not_found(request, case_id)
    latest = detail.latest_prediction
    model = state.model  # one model for the whole answer, even if a reload swaps it meanwhile
    departments = await run_in_threadpool(known_departments, model, store)
    decided = _decision(form, latest, departments)
    errors = [] if isinstance(decided, Decision) else decided
    if str(latest.id) != form.get("prediction_id", ""):
        errors.insert(0, "案件已有新的预测，请核对页面上的最新结果后再提交。")
    if errors:
        context = await run_in_threadpool(_case_context, store, detail, model)
        return render(request, "case.html", {**context, "errors": errors, "form": form},
                      status.HTTP_422_UNPROCESSABLE_CONTENT)
    assert isinstance(decided, Decision)
    review = await run_in_threadpool(
        lambda: record_review(store, warnings, latest, principal.name, department=decided.department,
                              level=decided.level, note=decided.note)
    )
    confirmed = form.get("action") == "confirm"
    logger.info("web review id=%s case_id=%s reviewer=%s action=%s", review.id, case_id, principal.name,
                "confirm" if confirmed else "change")
    set_flash(request, "已确认模型结果。" if confirmed else "已保存修改。")
    return RedirectResponse(f"/review/cases/{quote(case_id, safe='/')}", status.HTTP_303_SEE_OTHER)


# -- dashboard --------------------------------------------------------------------------------------
@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request, principal: ReviewerDep, store: StoreDep, state: ModelStateDep, warnings: WarningsDep
) -> HTMLResponse:
    rows = charts.case_rows(store)
    model = state.model
    info = describe_model(model) if model is not None else None
    admin = principal.may(Role.admin)
    report = store.agreement_report() if admin else None
    drift, drift_error = (_dashboard_drift(store, model) if admin else (None, None))
    retraining, retraining_error = last_retraining() if admin else (None, None)
    summary = warnings.book.summary()
    return render(
        request,
        "dashboard.html",
        {
            "level_chart": charts.level_chart(rows),
            "department_chart": charts.department_chart(rows),
            "cases": len(rows),
            "alerts": store.open_alerts(limit=20),
            "report": report,
            "model": info,
            "model_error": None if model is not None else state.unavailable_reason,
            "drift": drift,
            "drift_error": drift_error,
            "drift_weeks": DASHBOARD_DRIFT_WEEKS,
            "is_admin": admin,
            "retraining": retraining,
            "retraining_error": retraining_error,
            "warnings": summary,
            "district_levels": charts.level_table(summary.by_district, summary.district_level),
            "department_levels": charts.level_table(summary.by_department, summary.department_level),
        },
    )


#: The dashboard's drift section covers these last weeks, at most `DASHBOARD_DRIFT_CASES` predictions.
DASHBOARD_DRIFT_WEEKS = 8
DASHBOARD_DRIFT_CASES = 5_000


def _dashboard_drift(store: Store, model: LoadedModel | None) -> tuple[dict[str, Any] | None, str | None]:
    """The drift report of the last weeks (at most 5 minutes old), or why there is none (no model, or one
    without a reference)."""
    if model is None:
        return None, "没有加载模型，无法计算漂移。"
    try:
        return recent_drift_report(store, model, weeks=DASHBOARD_DRIFT_WEEKS, limit=DASHBOARD_DRIFT_CASES), None
    except NoReferenceError:
        return None, "当前模型训练时没有保存参照画像（较早版本训练），请用当前版本重新训练后再看漂移。"


# -- situation reports -------------------------------------------------------------------------------
#: PDFs printed at once by the page (each a Chromium process); more wait for none and are told to retry.
_printing = threading.BoundedSemaphore(2)
PDF_TIMEOUT_S = 60.0


def _report_request(period: str | None, day: str | None) -> tuple[str, str | None, str | None]:
    """The period and date as the form shows them, and what is wrong with them (None if nothing)."""
    period = period or "week"
    if period not in PERIODS:
        return "week", day, f"报告周期只能是：{'、'.join(f'{TITLES[p]}（{p}）' for p in PERIODS)}。"
    return period, day or None, None


async def admin_page(principal: PrincipalDep) -> Principal | None:
    """The caller if an admin; None for any other role, which the page answers with its own 403 page (not
    the API's JSON). `roles` tells the route-table test who may enter, as `require_role` does."""
    return principal if principal.may(Role.admin) else None


admin_page.roles = frozenset({Role.admin})  # type: ignore[attr-defined]
AdminPageDep = Annotated[Principal | None, Depends(admin_page)]


def _admins_only(request: Request) -> HTMLResponse:
    return error_page(request, status.HTTP_403_FORBIDDEN, "无权访问", "形势报告仅管理员可见。")


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    principal: AdminPageDep,
    warnings: WarningsDep,
    period: Annotated[str | None, Query(max_length=16)] = None,
    day: Annotated[str | None, Query(alias="date", max_length=32)] = None,
) -> HTMLResponse:
    """The admins' report page: pick a period and its last day, read the report, download it as PDF or HTML."""
    if principal is None:
        return _admins_only(request)
    period, day, error = _report_request(period, day)
    built = None
    if error is None:
        try:
            built = build_report(warnings, period, day)
        except PeriodError:
            error = "日期格式应为 YYYY-MM-DD，且在 2000-01-01 至 2100-12-31 之间。"
    query = {"period": period} | ({"date": built.window.day.isoformat()} if built else {})
    return render(
        request,
        "reports.html",
        {
            "periods": [(p, TITLES[p]) for p in PERIODS],
            "period": period,
            "day": built.window.day.isoformat() if built else (day or ""),
            "error": error,
            "body": render_body(built) if built else None,
            "pdf_url": "/reports/download?" + urlencode(query | {"format": "pdf"}),
            "html_url": "/reports/download?" + urlencode(query | {"format": "html"}),
        },
        status.HTTP_200_OK if error is None else status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


@router.get("/reports/download")
def download_report(
    request: Request,
    principal: AdminPageDep,
    warnings: WarningsDep,
    settings: SettingsDep,
    period: Annotated[str | None, Query(max_length=16)] = None,
    day: Annotated[str | None, Query(alias="date", max_length=32)] = None,
    fmt: Annotated[str, Query(alias="format", max_length=8)] = "pdf",
) -> Response:
    """The report as a file: PDF (A4, printed by Chromium) or the self-contained HTML."""
    if principal is None:
        return _admins_only(request)
    period, day, error = _report_request(period, day)
    if error is None and fmt not in ("pdf", "html"):
        error = "文件格式只能是 pdf 或 html。"
    if error is not None:
        return error_page(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "无法生成报告", error)
    try:
        built = build_report(warnings, period, day)
    except PeriodError:
        return error_page(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "无法生成报告",
                          "日期格式应为 YYYY-MM-DD，且在 2000-01-01 至 2100-12-31 之间。")
    html = render_document(built)
    name = f"report-{period}-{built.window.day.isoformat()}"
    logger.info("web report download period=%s date=%s format=%s by %s", period, built.window.day, fmt,
                principal.name)
    if fmt == "html":
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.html"'})
    if not _printing.acquire(blocking=False):
        return error_page(request, status.HTTP_503_SERVICE_UNAVAILABLE, "稍后重试", "正在生成其他报告，请稍后重试。")
    try:
        pdf = html_to_pdf(html, chromium=settings.chromium, timeout_s=PDF_TIMEOUT_S)
    except PdfError as exc:
        logger.warning("report PDF failed: %s", exc)
        return error_page(request, status.HTTP_503_SERVICE_UNAVAILABLE, "无法生成 PDF",
                          "服务器无法打印 PDF（未安装 Chromium 或打印超时），请下载 HTML 版本。")
    finally:
        _printing.release()
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
