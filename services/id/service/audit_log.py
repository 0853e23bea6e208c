"""Group commit for audit events that are the only write of a request.

A client-credentials token changes nothing but the audit trail. Giving each its own
transaction would cap the token endpoint at the database's commit rate; instead,
concurrent requests hand their events to one writer, which commits them together
while each caller waits for that commit. Nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio

from libs.storage import Database
from services.id.domain.audit import AuditEvent
from services.id.store import audit as audit_repo


class AuditLog:
    """Writes standalone audit events in shared transactions."""

    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self._db = db
        self._max_batch = max_batch
        self._pending: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, event: AuditEvent) -> None:
        """Return once ``event`` is committed (raises if its batch failed to commit)."""
        if self._db.in_transaction():
            # The batch needs the writer this task holds: it would wait forever.
            raise RuntimeError("AuditLog.record inside a transaction: use the transaction's own audit record")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="audit-group-commit")
        await done

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                async with self._db.transaction() as tx:
                    await audit_repo.add_many(tx.conn, [event for event, _ in batch])
            except Exception as exc:  # noqa: BLE001 — every waiter of the batch gets the failure
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
