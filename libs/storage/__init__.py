"""Storage: async SQLAlchemy engines (SQLite WAL by default, PostgreSQL), migrations."""

from libs.storage._database import Database, Transaction, is_postgres
from libs.storage._group_commit import GroupCommit, Grouped
from libs.storage._late import gather_late, late_steps, settle_late
from libs.storage._migrations import downgrade, run_migrations_online, upgrade
from libs.storage._prepared import Prepared
from libs.storage._retry import is_conflict, retry_conflicts
from libs.storage._types import UtcDateTime, big_id

__all__ = [
    "Database",
    "GroupCommit",
    "Grouped",
    "Prepared",
    "Transaction",
    "UtcDateTime",
    "big_id",
    "downgrade",
    "gather_late",
    "is_conflict",
    "is_postgres",
    "late_steps",
    "retry_conflicts",
    "run_migrations_online",
    "settle_late",
    "upgrade",
]
