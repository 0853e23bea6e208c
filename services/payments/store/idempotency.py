"""Idempotency records, written in the transaction of the effect they guard."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payments.domain.idempotency import IdempotencyRecord
from services.payments.store.tables import idempotency_keys


def get(conn: Connection, scope: str, key: str) -> IdempotencyRecord | None:
    """The record of ``key`` in ``scope``, if any."""
    k = idempotency_keys.c
    row = (conn.execute(select(idempotency_keys).where(k.scope == scope, k.key == key))).first()
    if row is None:
        return None
    return IdempotencyRecord(row.scope, row.key, row.request_hash, row.response, row.created_at, row.expires_at)


def put(conn: Connection, record: IdempotencyRecord) -> None:
    """Store a record (a duplicate key fails the transaction: the effect is rolled back)."""
    conn.execute(
        insert(idempotency_keys).values(
            scope=record.scope,
            key=record.key,
            request_hash=record.request_hash,
            response=record.response,
            created_at=record.created_at,
            expires_at=record.expires_at,
        )
    )


async def purge(conn: AsyncConnection, now: datetime) -> int:
    """Delete the records whose retention has passed; returns how many."""
    result = await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
    return int(result.rowcount)
