"""Reading the audit log (writing happens inside each use case's transaction)."""

from __future__ import annotations

from services.tns.domain.audit import AuditEntry
from services.tns.service._runtime import Runtime
from services.tns.store import audit as repo


class AuditTrail:
    """Pages through the append-only audit log."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def page(self, subject: str, before_seq: int | None, limit: int) -> list[tuple[int, AuditEntry]]:
        """Entries newest first, each with its sequence (the cursor)."""
        async with self._rt.db.read() as conn:
            return await repo.page(conn, subject, before_seq, limit)
