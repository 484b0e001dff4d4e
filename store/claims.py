"""Who is working on a case: a reviewer claims it, the others see it taken and leave it alone.

Append-only: a claim and a release are rows of `review_claims`; a case's latest row decides. A claim
lasts `CLAIM_TTL` unless renewed (claiming again) or released, so a reviewer who walks away does not hold
a case for good. Claims of one case are serialised (`Store._lock_case`), so two reviewers claiming at the
same moment cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.tables import ReviewClaim, as_utc, utcnow

CLAIM_TTL = timedelta(minutes=30)
CLAIM, RELEASE = "claim", "release"


@dataclass(frozen=True)
class Claim:
    case_id: str
    reviewer: str
    claimed_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.claimed_at + CLAIM_TTL


class ClaimConflict(Exception):
    """Another reviewer holds the case."""

    def __init__(self, claim: Claim) -> None:
        super().__init__(f"case {claim.case_id!r} is claimed by {claim.reviewer} until {claim.expires_at:%H:%M} UTC")
        self.claim = claim


def live_claims(session: Session, case_ids: Iterable[str], now: datetime | None = None) -> dict[str, Claim]:
    """The live claim of each of `case_ids` that has one."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return {}
    latest = (
        select(func.max(ReviewClaim.id)).where(ReviewClaim.case_id.in_(ids)).group_by(ReviewClaim.case_id)
    )
    since = (now or utcnow()) - CLAIM_TTL
    out = {}
    for row in session.scalars(select(ReviewClaim).where(ReviewClaim.id.in_(latest))):
        if row.action == CLAIM and as_utc(row.at) > since:
            out[row.case_id] = Claim(row.case_id, row.reviewer, as_utc(row.at))
    return out


def claim(session: Session, case_id: str, reviewer: str) -> Claim:
    """Claim (or renew) `case_id` for `reviewer`; ClaimConflict if another reviewer holds it."""
    now = utcnow()
    held = live_claims(session, [case_id], now).get(case_id)
    if held is not None and held.reviewer != reviewer:
        raise ClaimConflict(held)
    session.add(ReviewClaim(case_id=case_id, reviewer=reviewer, action=CLAIM, at=now))
    return Claim(case_id, reviewer, now)


def release(session: Session, case_id: str, reviewer: str) -> bool:
    """Let the case go if `reviewer` holds it; False if they did not (nothing is written)."""
    held = live_claims(session, [case_id]).get(case_id)
    if held is None or held.reviewer != reviewer:
        return False
    session.add(ReviewClaim(case_id=case_id, reviewer=reviewer, action=RELEASE, at=utcnow()))
    return True
