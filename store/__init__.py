"""The audit store: every case, prediction, review and hot-issue alert, append-only, in SQL.

SQLite by default (a file, WAL mode), PostgreSQL when `TRIAGE_DATABASE_URL` names one. The schema is
managed only by the Alembic migrations in `store/migrations/`:

    from store import Store, upgrade_database

    upgrade_database(settings.database_url)      # at start-up; idempotent
    store = Store.from_url(settings.database_url)
    ...
    store.dispose()                               # at shutdown

Routes reach the store through `serving.dependencies.StoreDep`.
"""

from store.engine import make_engine, redact
from store.migrate import current_revision, head_revision, upgrade_database
from store.records import (
    AlertRecord,
    CaseInput,
    CaseRecord,
    MemberRecord,
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

__all__ = [
    "PRIORITIES",
    "AgreementOverall",
    "AgreementReport",
    "AlertRecord",
    "CaseDetail",
    "CaseInput",
    "CaseRecord",
    "DepartmentAgreement",
    "LevelAgreement",
    "MemberRecord",
    "MissedRed",
    "PredictionInput",
    "PredictionRecord",
    "QueueItem",
    "ReviewRecord",
    "SnapshotRecord",
    "Store",
    "WeekAgreement",
    "current_revision",
    "head_revision",
    "make_engine",
    "redact",
    "text_hash",
    "upgrade_database",
]
