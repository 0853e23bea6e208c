"""What every TnS use case needs: the database, the outbox and the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from libs.clock import Clock
from libs.events import Outbox
from libs.ids import new_ulid
from libs.storage import Database, Transaction
from services.tns.domain.audit import AuditEntry
from services.tns.store import audit as audit_repo


@dataclass(frozen=True)
class Runtime:
    """Shared dependencies of the use cases."""

    db: Database
    outbox: Outbox
    clock: Clock


async def audit(
    tx: Transaction,
    rt: Runtime,
    actor: str,
    action: str,
    subject: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    note: str = "",
    ruleset_version: str = "",
    model_version: str = "",
) -> None:
    """Append an audit entry in the caller's transaction (it exists iff the change does)."""
    entry = AuditEntry(
        entry_id=new_ulid("aud_"),
        at=rt.clock.now(),
        actor=actor,
        action=action,
        subject=subject,
        ruleset_version=ruleset_version,
        model_version=model_version,
        before=before or {},
        after=after or {},
        note=note,
    )
    await audit_repo.add_many(tx.conn, [entry])
