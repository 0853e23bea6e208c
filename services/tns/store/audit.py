"""The append-only audit log (the database refuses updates and deletes)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import Connection, Row, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tns.domain.audit import AuditEntry
from services.tns.store.tables import audit


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _rows(entries: Sequence[AuditEntry]) -> list[dict[str, object]]:
    return [
        {
            "id": e.entry_id,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "ruleset_version": e.ruleset_version,
            "model_version": e.model_version,
            "before_json": _json(e.before),
            "after_json": _json(e.after),
            "note": e.note,
        }
        for e in entries
    ]


async def add_many(conn: AsyncConnection, entries: Sequence[AuditEntry]) -> None:
    """Append entries."""
    if entries:
        await conn.execute(insert(audit), _rows(entries))


_INSERT = insert(audit)  # one statement object: its cache key is computed once


def add_many_sync(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    """`add_many` on a synchronous connection (`Database.write_sync`)."""
    if entries:
        conn.execute(_INSERT, _rows(entries))


def _entry(row: Row[tuple[object, ...]]) -> tuple[int, AuditEntry]:
    m = row._mapping
    return m["seq"], AuditEntry(
        entry_id=m["id"],
        at=m["at"],
        actor=m["actor"],
        action=m["action"],
        subject=m["subject"],
        ruleset_version=m["ruleset_version"],
        model_version=m["model_version"],
        before=orjson.loads(m["before_json"]),
        after=orjson.loads(m["after_json"]),
        note=m["note"],
    )


async def page(conn: AsyncConnection, subject: str, before_seq: int | None, limit: int) -> list[tuple[int, AuditEntry]]:
    """Entries newest first, with their sequence (the page cursor)."""
    query = select(audit)
    if subject:
        query = query.where(audit.c.subject == subject)
    if before_seq is not None:
        query = query.where(audit.c.seq < before_seq)
    rows = await conn.execute(query.order_by(audit.c.seq.desc()).limit(limit))
    return [_entry(r) for r in rows]
