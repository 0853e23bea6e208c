"""Idempotency records, written in the transaction of the effect they guard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payments.domain.idempotency import IdempotencyRecord
from services.payments.store.tables import idempotency_keys

_k = idempotency_keys.c
_GET = select(idempotency_keys).where(_k.scope == bindparam("scope"), _k.key == bindparam("key"))
_PUT = insert(idempotency_keys)


def get(conn: Connection, scope: str, key: str) -> IdempotencyRecord | None:
    """The record of ``key`` in ``scope``, if any."""
    row = conn.execute(_GET, {"scope": scope, "key": key}).first()
    if row is None:
        return None
    return IdempotencyRecord(row.scope, row.key, row.request_hash, row.response, row.created_at, row.expires_at)


def put(conn: Connection, records: Sequence[IdempotencyRecord]) -> None:
    """Store records (a duplicate key fails the transaction: the effects are rolled back)."""
    conn.execute(
        _PUT,
        [
            {
                "scope": r.scope,
                "key": r.key,
                "request_hash": r.request_hash,
                "response": r.response,
                "created_at": r.created_at,
                "expires_at": r.expires_at,
            }
            for r in records
        ],
    )


async def purge(conn: AsyncConnection, now: datetime) -> int:
    """Delete the records whose retention has passed; returns how many."""
    result = await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
    return int(result.rowcount)
