"""Idempotency records, written in the transaction of the effect they guard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.storage import Prepared, UtcDateTime
from services.payments.domain.idempotency import IdempotencyRecord
from services.payments.store.tables import idempotency_keys

_k = idempotency_keys.c
_GET = Prepared(select(idempotency_keys).where(_k.scope == bindparam("scope"), _k.key == bindparam("key")))
_PUT = Prepared(
    insert(idempotency_keys), column_keys=("scope", "key", "request_hash", "response", "created_at", "expires_at")
)


def get(conn: Connection, scope: str, key: str) -> IdempotencyRecord | None:
    """The record of ``key`` in ``scope``, if any."""
    row = _GET.first(conn, {"scope": scope, "key": key})
    return None if row is None else _record(row)


def _record(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(row.scope, row.key, row.request_hash, row.response, row.created_at, row.expires_at)


# PostgreSQL: try each key's advisory lock, then read its record, for a whole group of
# calls in one round trip (the CTE calls a volatile function, so it runs once, first).
_LOCK_AND_GET = Prepared(
    text(
        """
    WITH wanted AS (
        SELECT w.n, w.scope, w.key, pg_try_advisory_xact_lock(w.lock) AS got
        FROM unnest(CAST(:scopes AS varchar[]), CAST(:keys AS varchar[]), CAST(:locks AS bigint[]))
            WITH ORDINALITY AS w(scope, key, lock, n)
    )
    SELECT wanted.got, r.scope, r.key, r.request_hash, r.response, r.created_at, r.expires_at
    FROM wanted LEFT JOIN idempotency_keys r ON r.scope = wanted.scope AND r.key = wanted.key
    ORDER BY wanted.n
    """
    ).columns(created_at=UtcDateTime(), expires_at=UtcDateTime())
)


def lock_and_get(
    conn: Connection, wanted: Sequence[tuple[str, str, int]]
) -> list[tuple[bool, IdempotencyRecord | None]]:
    """PostgreSQL: for each (scope, key, advisory lock id), whether this transaction now
    holds the lock (False: another one does) and the key's record, if any, in one
    statement. Its snapshot predates the locks: a record committed by the lock's last
    holder in between is not seen, and inserting it again fails on the primary key (the
    caller's transaction rolls back and looks again).
    """
    params = {"scopes": [w[0] for w in wanted], "keys": [w[1] for w in wanted], "locks": [w[2] for w in wanted]}
    return [(bool(row.got), None if row.key is None else _record(row)) for row in _LOCK_AND_GET.rows(conn, params)]


def put(conn: Connection, records: Sequence[IdempotencyRecord]) -> None:
    """Store records (a duplicate key fails the transaction: the effects are rolled back)."""
    _PUT.run_many(
        conn,
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
