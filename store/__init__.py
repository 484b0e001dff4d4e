"""The audit store: every case, prediction, review and hot-issue alert, append-only, in SQL.

SQLite by default (a file, WAL mode), PostgreSQL when `TRIAGE_DATABASE_URL` names one. The schema is
managed only by the Alembic migrations in `store/migrations/`:

    from store import Store, upgrade_database

    upgrade_database(settings.database_url)      # at start-up; idempotent
    store = Store.from_url(settings.database_url)
    ...
    store.dispose()                               # at shutdown

Routes reach the store through `serving.dependencies.StoreDep`. Warnings (预警单) and the webhook outbox
are `WarningBook` and `Outbox` on the same engine (`store.warnings`, `store.outbox`); `WarningBook.summary`
gives the counts a situation report needs (`store.warning_queries`).
"""

from store.engine import make_engine, redact
from store.migrate import current_revision, head_revision, upgrade_database
from store.outbox import Outbox
from store.records import (
    AlertRecord,
    CaseInput,
    CaseRecord,
    MemberRecord,
    PendingPrediction,
    PredictionInput,
    PredictionRecord,
    ReviewRecord,
    SnapshotRecord,
)
from store.repository import Store, text_hash
from store.review_records import (
    PRIORITIES,
    AgreementOverall,
    AgreementReport,
    CaseDetail,
    DepartmentAgreement,
    LevelAgreement,
    MissedRed,
    QueueItem,
    WeekAgreement,
)
from store.warning_queries import WarningFilters, WarningSummary
from store.warning_records import OutboxRecord, WarningDetail, WarningDraft, WarningEventRecord, WarningRecord
from store.warnings import IllegalTransition, WarningBook, WarningNotFound

__all__ = [
    "PRIORITIES",
    "AgreementOverall",
    "AgreementReport",
    "AlertRecord",
    "CaseDetail",
    "CaseInput",
    "CaseRecord",
    "DepartmentAgreement",
    "IllegalTransition",
    "LevelAgreement",
    "MemberRecord",
    "MissedRed",
    "Outbox",
    "OutboxRecord",
    "PendingPrediction",
    "PredictionInput",
    "PredictionRecord",
    "QueueItem",
    "ReviewRecord",
    "SnapshotRecord",
    "Store",
    "WarningBook",
    "WarningDetail",
    "WarningDraft",
    "WarningEventRecord",
    "WarningFilters",
    "WarningNotFound",
    "WarningRecord",
    "WarningSummary",
    "WeekAgreement",
    "current_revision",
    "head_revision",
    "make_engine",
    "redact",
    "text_hash",
    "upgrade_database",
]
