"""Reading the audit trail."""

from __future__ import annotations

from services.id.domain.audit import AuditEvent
from services.id.service._runtime import Runtime
from services.id.store import audit as audit_repo


class AuditService:
    """The security audit trail, newest first."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def list_events(
        self, *, page_size: int, page_token: str = "", subject: str = "", type_: str = ""
    ) -> tuple[list[AuditEvent], str]:
        """Return a page of events, optionally about one subject or of one type."""
        async with self._rt.db.read() as conn:
            items = await audit_repo.page(conn, before=page_token, limit=page_size + 1, subject=subject, type_=type_)
        more = len(items) > page_size
        items = items[:page_size]
        return items, (items[-1].id if more else "")
