"""The sign-in throttle repository."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.id.domain.throttle import ThrottleState
from services.id.store.tables import signin_throttle


async def get(conn: AsyncConnection, key: str) -> ThrottleState:
    """Return the state of ``key`` (a clean state when it has none)."""
    row = (await conn.execute(select(signin_throttle).where(signin_throttle.c.key == key))).first()
    if row is None:
        return ThrottleState(key)
    return ThrottleState(key, row.failures, row.last_failure_at, row.blocked_until)


async def lock(conn: AsyncConnection, key: str) -> ThrottleState:
    """Return the state of ``key`` locked until the transaction ends, so concurrent
    attempts on one key are counted one after another.

    SQLite write transactions are already exclusive; PostgreSQL locks the row, creating
    it first so that there is a row to lock.
    """
    if conn.dialect.name == "postgresql":
        t = signin_throttle
        # One statement that both creates and locks the row: a separate insert and
        # SELECT ... FOR UPDATE could lose the row to a concurrent delete in between.
        insert_row = pg_insert(t).values(key=key, failures=0)
        upsert = insert_row.on_conflict_do_update(
            index_elements=["key"], set_={"key": insert_row.excluded.key}
        ).returning(t.c.failures, t.c.last_failure_at, t.c.blocked_until)
        row = (await conn.execute(upsert)).one()
        return ThrottleState(key, row.failures, row.last_failure_at, row.blocked_until)
    return await get(conn, key)


async def save(conn: AsyncConnection, state: ThrottleState) -> None:
    """Store a state; a clean one is deleted so the table only holds offenders."""
    t = signin_throttle
    if state.failures == 0:
        await conn.execute(delete(t).where(t.c.key == state.key))
        return
    values = {
        "failures": state.failures,
        "last_failure_at": state.last_failure_at,
        "blocked_until": state.blocked_until,
    }
    result = await conn.execute(update(t).where(t.c.key == state.key).values(**values))
    if result.rowcount == 0:
        await conn.execute(insert(t).values(key=state.key, **values))
