"""The audit trail repository."""

from __future__ import annotations

import json

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.id.domain.audit import AuditEvent
from services.id.store.tables import audit_events


def _row(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "type": event.type,
        "subject": event.subject,
        "client_id": event.client_id,
        "actor": event.actor,
        "source": event.source,
        "details": json.dumps(dict(event.details), sort_keys=True),
        "occurred_at": event.occurred_at,
    }


async def add(conn: AsyncConnection, event: AuditEvent) -> None:
    """Append an audit event."""
    await conn.execute(insert(audit_events).values(**_row(event)))


async def add_many(conn: AsyncConnection, events: list[AuditEvent]) -> None:
    """Append several audit events in one statement."""
    if events:
        await conn.execute(insert(audit_events), [_row(e) for e in events])


async def page(
    conn: AsyncConnection, *, before: str, limit: int, subject: str = "", type_: str = ""
) -> list[AuditEvent]:
    """Events newest first (ids are ULIDs, so id order is time order), before cursor ``before``."""
    t = audit_events.c
    query = select(audit_events).order_by(t.id.desc()).limit(limit)
    if before:
        query = query.where(t.id < before)
    if subject:
        query = query.where(t.subject == subject)
    if type_:
        query = query.where(t.type == type_)
    rows = await conn.execute(query)
    return [
        AuditEvent(r.id, r.type, r.subject, r.occurred_at, r.client_id, r.actor, r.source, json.loads(r.details))
        for r in rows
    ]
