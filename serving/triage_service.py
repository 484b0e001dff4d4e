"""One triage call, end to end: route, match to a hot issue, assess risk, store, answer.

Routes hand their validated cases to `triage_cases`; this is the only place that combines the model
bundle, the hot-issue detector and the audit store, so the single and batch endpoints behave alike.
A case resubmitted with the same case_id and text gets its stored prediction back (nothing is stored
or counted twice) unless the client asks to re-score. With a hot-issue detector, the transaction that
stores cases finds it under the case's lock (the case is scored, then left unobserved and answered from the
store: one transaction per case); without one, a lookup before scoring does.

When the caller passes the spool-backed `writer` in front of the store, writes go through it: with the
database unreachable the answer is the same but `prediction_id` and `stored_at` are null (the
prediction is spooled and stored when the database returns); with neither database nor spool usable,
`SpoolUnavailableError` (the route answers 503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from features.prepared import prepare
from models.bundle import Assessment, PendingAssessments, Route, TriageBundle
from models.hotspots import Assignment
from models.mlflow_model import LoadedModel
from serving.hotspot_service import Answer, GroupedAnswer, HotspotService, Observation, Outcome
from serving.metrics import ServiceMetrics
from serving.schemas import CaseTriage, Department, DepartmentScore, HotIssue, Risk, RiskReason, TriageRequest
from serving.spool import DurableWriter
from serving.state import model_ref
from store import CaseInput, PendingPrediction, PredictionInput, PredictionRecord, Store

logger = logging.getLogger(__name__)

UNNAMED_MODEL = "unregistered"
LOW_CONFIDENCE, OUT_OF_TAXONOMY = "low_confidence", "out_of_taxonomy"


def triage_cases(
    model: LoadedModel,
    cases: Sequence[TriageRequest],
    *,
    store: Store | None = None,
    writer: DurableWriter | None = None,
    hotspots: HotspotService | None = None,
    rescore: bool = False,
    metrics: ServiceMetrics | None = None,
) -> list[CaseTriage]:
    """The answers to ``cases``, in order. ``writer``: the spool-backed writer in front of the store (the
    service passes it; its store is the one written); ``store`` alone: writes go straight to it. ``metrics``
    counts each prediction recorded (stored or spooled), not one answered from the store."""
    if writer is not None:
        store = writer.store
    results: list[CaseTriage | None] = [None] * len(cases)
    todo: list[int] = []
    # With a detector, the transaction that stores a case finds a resubmission under the case's lock: a
    # lookup first would be a second transaction per case (a resubmission costs a scoring instead).
    lookup = None if hotspots is not None else writer or store
    for i, case in enumerate(cases):
        hit = None if (lookup is None or rescore) else lookup.existing_prediction(case.case_id, case.title, case.body)
        if hit is not None:
            results[i] = _from_record(hit)
        else:
            todo.append(i)
    if todo:
        scored = _score([cases[i] for i in todo], model, store, writer, hotspots, rescore, metrics)
        for i, result in zip(todo, scored, strict=True):
            results[i] = result
    return [r for r in results if r is not None]


def _score(
    cases: Sequence[TriageRequest],
    model: LoadedModel,
    store: Store | None,
    writer: DurableWriter | None,
    hotspots: HotspotService | None,
    rescore: bool,
    metrics: ServiceMetrics | None = None,
) -> list[CaseTriage]:
    started = time.perf_counter()
    bundle = model.bundle
    # Each case's text is normalised and tokenised once, here; the router, the detector and the risk model
    # all read that one PreparedCase.
    prepared = [prepare(c.title, c.body) for c in cases]
    routes = bundle.route(prepared)
    # All of the risk model's reading of the cases but their bursts, for the whole call at once and before
    # the detector's lock: under it (on the shared feed, every replica waits for that lock) only each case's
    # burst part is left (`finish`). There the reasons' contributions are read now too, and only updated under
    # the lock for the few trees that read bursts; in local mode one process holds its own lock, so the update
    # (about 0.2 ms for a case alone) would only add to the request.
    early = hotspots is not None and hotspots.shared
    pendings = bundle.pending(prepared, routes=routes, contributions=early).parts()
    ref = model_ref(model)
    jobs: list[_Job] = []
    for case, route, pending in zip(cases, routes, pendings, strict=True):
        made_at = datetime.now(UTC)
        case_input = CaseInput(case.case_id, case.title, case.body, case.created_at, case.reporter_id, case.channel)
        assess = _Assessing(bundle, case, pending, ref, started, len(cases), placed=hotspots is not None)
        answer = None
        if store is not None and (writer is None or writer.writes_directly(case.case_id)):
            # Stored in the detector's transaction: the case, its burst's rows and its answer commit together.
            answer = _StoredAnswer(assess, case_input, rescore, made_at)
        jobs.append(_Job(case, route, case_input, made_at, assess, answer))

    # A batch's cases are observed together: on the shared feed they queue as one group, so a batch takes a
    # feed transaction per `MAX_GROUP` cases instead of one per case.
    observed: list[Outcome | tuple[None, None, None] | BaseException]
    if hotspots is None:
        observed = [(None, None, None)] * len(jobs)
    else:
        observed = list(hotspots.observe_many([
            Observation(job.case.case_id, job.case.created_at, job.case.title, job.case.body, job.case.reporter_id,
                        channel=job.case.channel, answer=job.answer, prepared=prepared[k],
                        skip_if_stored=job.answer is not None and not rescore)
            for k, job in enumerate(jobs)
        ]))
    out: list[CaseTriage] = []
    failed: BaseException | None = None
    for job, outcome in zip(jobs, observed, strict=True):
        case, route, case_input, made_at = job.case, job.route, job.case_input, job.made_at
        if isinstance(outcome, BaseException):
            failed = failed or outcome  # not observed; the other cases are still stored, then it is raised
            continue
        assignment, level, stored = outcome
        if stored is not None and not stored.is_new:
            # A resubmission the detector's transaction found (or a concurrent request stored first): the answer
            # the audit trail holds; nothing stored or counted.
            out.append(_from_record(stored))
            logger.info("triage case_id=%s answered from prediction_id=%s", case.case_id, stored.id)
            continue
        try:
            result, prediction = job.assess(assignment, level)
            record = stored
            if store is not None and record is None:
                record = (
                    store.record_case_and_prediction(case_input, prediction, rescore=rescore, made_at=made_at)
                    if writer is None
                    else writer.record_prediction(case_input, prediction, rescore=rescore, made_at=made_at)
                )
        except BaseException as exc:
            # Not answered (neither the database nor the spool took it: 503; or an error): the case must
            # never count in a burst. The batch's other cases are still stored (they count), then it is raised.
            if hotspots is not None and stored is None:
                hotspots.withdraw(case.case_id)
            failed = failed or exc
            continue
        # A concurrent request may have stored this case first: answer with what the store holds.
        # None: spooled (database unreachable), or no store; the answer stands, without an audit-trail id.
        if record is not None:
            result = _from_record(record) if not record.is_new else result.model_copy(
                update={"prediction_id": record.id, "stored_at": record.created_at}
            )
        if metrics is not None and (record is None or record.is_new):
            metrics.case(prediction.department, prediction.risk_level, prediction.needs_review)
        out.append(result)
        logger.info(
            "triage case_id=%s department=%s needs_review=%s risk=%s hot_issue=%s model_version=%s latency_ms=%.1f",
            case.case_id, route.label, route.needs_review, prediction.risk_level,
            prediction.hot_issue_id, ref.version, prediction.latency_ms,
        )
    if failed is not None:
        raise failed
    return out


@dataclass(eq=False)
class _Assessing:
    """One case of a call between its routing and its answer: its risk (with its burst, when ``placed`` by a
    detector) and its answer, made once per placement and kept for the answer after the feed's transaction."""

    bundle: TriageBundle
    case: TriageRequest
    pending: PendingAssessments
    ref: Any
    started: float
    batch: int
    placed: bool
    _made: tuple[Assignment | None, CaseTriage, PredictionInput] | None = field(default=None, init=False)

    def __call__(self, assignment: Assignment | None, level: str | None) -> tuple[CaseTriage, PredictionInput]:
        """Risk and answer for the case as the detector placed it."""
        _Assessing.many([(self, assignment, level)])
        assert self._made is not None
        return self._made[1], self._made[2]

    @staticmethod
    def many(items: Sequence[tuple[_Assessing, Assignment | None, str | None]]) -> None:
        """Make each case's risk and answer, the risk model once per model for those not made yet (a feed
        group's cases come from several calls, each with the model it was routed with)."""
        groups: dict[tuple[int, bool], list[tuple[_Assessing, Assignment | None, str | None]]] = {}
        for item in items:
            if not item[0]._done(item[1]):
                groups.setdefault((id(item[0].bundle), item[0].placed), []).append(item)
        for group in groups.values():
            first = group[0][0]
            pending = PendingAssessments.concat([assessing.pending for assessing, _, _ in group])
            bursts = [assignment for _, assignment, _ in group] if first.placed else None
            assessed = first.bundle.finish(pending, bursts=bursts)
            for (assessing, assignment, level), assessment in zip(group, assessed, strict=True):
                assessing._keep(assignment, level, assessment)

    def _done(self, assignment: Assignment | None) -> bool:
        return self._made is not None and self._made[0] is assignment

    def _keep(self, assignment: Assignment | None, level: str | None, assessment: Assessment) -> None:
        result, prediction = _answer(self.case, assessment, level, self.ref, self.started, self.batch)
        self._made = (assignment, result, prediction)


@dataclass(eq=False)
class _StoredAnswer(GroupedAnswer):
    """The prediction the detector's transaction stores for a case once the detector placed it."""

    assess: _Assessing
    case_input: CaseInput
    rescore: bool
    made_at: datetime

    @classmethod
    def many(cls, items: Sequence[tuple[Any, Assignment, str | None]]) -> list[PendingPrediction | None]:
        _Assessing.many([(answer.assess, assignment, level) for answer, assignment, level in items])
        return [PendingPrediction(answer.case_input, answer.assess(assignment, level)[1], answer.rescore,
                                  answer.made_at) for answer, assignment, level in items]


@dataclass(frozen=True)
class _Job:
    """One case of a call between its scoring and its answer."""

    case: TriageRequest
    route: Route
    case_input: CaseInput
    made_at: datetime
    assess: Callable[[Assignment | None, str | None], tuple[CaseTriage, PredictionInput]]
    answer: Answer | None


def _answer(
    case: TriageRequest,
    assessment: Assessment,
    level: str | None,
    ref: Any,
    started: float,
    batch: int,
) -> tuple[CaseTriage, PredictionInput]:
    """The API answer and the stored prediction of one assessed case (``level``: its hot issue's alert level)."""
    route, burst = assessment.route, assessment.burst
    hot: HotIssue | None = None
    if burst is not None and assessment.hot_issue_id:
        hot = HotIssue(id=assessment.hot_issue_id, level=level, cases=burst.cases, reporters=burst.reporters)
    risk: Risk | None = None
    if assessment.risk is not None:
        risk = Risk(
            level=assessment.risk.level,
            probabilities=assessment.risk.probabilities,
            reasons=[RiskReason.model_validate(r.to_dict()) for r in assessment.risk.reasons],
        )
    latency_ms = 1000 * (time.perf_counter() - started) / batch
    result = CaseTriage(case_id=case.case_id, department=_department(route), risk=risk, hot_issue=hot)
    prediction = PredictionInput(
        model_name=ref.name or UNNAMED_MODEL,
        model_version=ref.version,
        department=route.label,
        department_confidence=route.confidence,
        needs_review=route.needs_review,
        top=[{"label": label, "probability": p} for label, p in route.top],
        risk_level=risk.level if risk else None,
        risk_probabilities=risk.probabilities if risk else None,
        reasons=_stored_reasons(risk, hot, route),
        hot_issue_id=hot.id if hot else None,
        latency_ms=latency_ms,
    )
    return result, prediction


def _department(route: Route) -> Department:
    return Department(
        label=route.label,
        confidence=route.confidence,
        top=[DepartmentScore(label=label, probability=p) for label, p in route.top],
        needs_review=route.needs_review,
        review_reason=_review_reason(route.needs_review, route.out_of_taxonomy),
    )


def _review_reason(needs_review: bool, out_of_taxonomy: bool) -> str | None:
    if out_of_taxonomy:
        return OUT_OF_TAXONOMY
    return LOW_CONFIDENCE if needs_review else None


def _stored_reasons(risk: Risk | None, hot: HotIssue | None, route: Route | None = None) -> dict[str, Any]:
    return {
        "risk": [r.model_dump(exclude_none=True) for r in risk.reasons] if risk else [],
        "hot_issue": hot.model_dump() if hot else None,
        "routing": {"out_of_taxonomy": bool(route and route.out_of_taxonomy)},
    }


def _from_record(record: PredictionRecord) -> CaseTriage:
    """The answer a stored prediction gave, rebuilt from the audit trail."""
    reasons = record.reasons if isinstance(record.reasons, dict) else {}
    risk = None
    if record.risk_level:
        risk = Risk(
            level=record.risk_level,
            probabilities=record.risk_probabilities or {},
            reasons=[RiskReason.model_validate(r) for r in reasons.get("risk") or []],
        )
    hot = HotIssue.model_validate(reasons["hot_issue"]) if reasons.get("hot_issue") else None
    top = [
        DepartmentScore(label=t["label"], probability=t["probability"]) if isinstance(t, dict)
        else DepartmentScore(label=t[0], probability=t[1])
        for t in record.top
    ]
    stored_at = record.created_at
    if stored_at.tzinfo is None:
        stored_at = stored_at.replace(tzinfo=UTC)
    return CaseTriage(
        case_id=record.case_id,
        department=Department(
            label=record.department, confidence=record.department_confidence, top=top,
            needs_review=record.needs_review,
            review_reason=_review_reason(
                record.needs_review, bool((reasons.get("routing") or {}).get("out_of_taxonomy"))
            ),
        ),
        risk=risk,
        hot_issue=hot,
        prediction_id=record.id,
        stored_at=stored_at,
    )
