"""Audit events that are the only write of a request, committed in groups.

A client-credentials token changes nothing but the audit trail; giving each its own
transaction would cap the token endpoint at the database's commit rate
(see `libs.storage.GroupCommit`).
"""

from __future__ import annotations

from collections.abc import Sequence

from libs.storage import Database, GroupCommit, Transaction
from services.id.domain.audit import AuditEvent
from services.id.store import audit as audit_repo


async def _write(tx: Transaction, events: Sequence[AuditEvent]) -> None:
    await audit_repo.add_many(tx.conn, list(events))


class AuditLog:
    """Writes standalone audit events in shared transactions."""

    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self._group = GroupCommit(db, _write, max_batch=max_batch, name="audit-group-commit")

    async def record(self, event: AuditEvent) -> None:
        """Return once ``event`` is committed (raises if its batch failed to commit)."""
        await self._group.write(event)
