"""Confirming several queue cases at once: each one as a single confirm would be, or skipped with why.

The page's checkboxes and `POST /v1/reviews/confirm` name predictions, not cases: a case whose text
changed (a new prediction) or that someone reviewed meanwhile is skipped rather than confirmed unseen,
and so is a case another reviewer has claimed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from serving.warning_desk import WarningDesk, record_review
from store import ReviewRecord, Store

logger = logging.getLogger(__name__)

#: Predictions one call may confirm.
MAX_BULK = 200
NOT_PENDING, CLAIMED = "not_pending", "claimed_by_another_reviewer"


@dataclass
class BulkOutcome:
    confirmed: list[ReviewRecord] = field(default_factory=list)
    #: (prediction id, case id or None, reason code, who holds it for CLAIMED)
    skipped: list[tuple[int, str | None, str, str | None]] = field(default_factory=list)


def confirm_many(
    store: Store, prediction_ids: Iterable[int], reviewer: str, warnings: WarningDesk | None = None
) -> BulkOutcome:
    """Confirm each pending prediction (its case's warning follows, `record_review`), or skip it with why."""
    outcome = BulkOutcome()
    pending = {pid: store.pending_prediction(pid) for pid in dict.fromkeys(prediction_ids)}
    holders = store.live_claims([p.case_id for p in pending.values() if p is not None])
    for pid, prediction in pending.items():
        if prediction is None:
            outcome.skipped.append((pid, None, NOT_PENDING, None))
            continue
        holder = holders.get(prediction.case_id)
        if holder is not None and holder.reviewer != reviewer:
            outcome.skipped.append((pid, prediction.case_id, CLAIMED, holder.reviewer))
            continue
        review = record_review(store, warnings, prediction, reviewer, department=prediction.department,
                               level=prediction.risk_level)
        outcome.confirmed.append(review)
        logger.info("review id=%s case_id=%s prediction_id=%s reviewer=%s action=confirm (bulk)",
                    review.id, prediction.case_id, prediction.id, reviewer)
    return outcome
