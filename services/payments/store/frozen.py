"""Frozen wallets: users whose outgoing money is stopped (TnS suspended them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.storage import Prepared
from services.payments.store.tables import frozen_wallets


async def freeze(conn: AsyncConnection, user_id: str, reason: str, at: datetime) -> None:
    """Freeze the user's wallet (no effect when it is frozen already)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(frozen_wallets).on_conflict_do_nothing(index_elements=["user_id"])
    await conn.execute(statement, {"user_id": user_id, "reason": reason, "frozen_at": at})


async def unfreeze(conn: AsyncConnection, user_id: str) -> None:
    """Lift the freeze (no effect when there is none)."""
    await conn.execute(delete(frozen_wallets).where(frozen_wallets.c.user_id == user_id))


_FROZEN_AMONG = select(frozen_wallets.c.user_id).where(frozen_wallets.c.user_id.in_(bindparam("ids", expanding=True)))
# One payer is the common case (every payment): a plain equality, where an expanding IN
# is compiled again for each call.
_FROZEN_ONE = Prepared(select(frozen_wallets.c.user_id).where(frozen_wallets.c.user_id == bindparam("id")))


# Payers checked together at the end of a unit (`Ledger.post` with ``late``).
PENDING_CHECKS = "frozen.pending_checks"
# Several payers on PostgreSQL (a group's): one array parameter, prepared once.
_FROZEN_ANY = Prepared(text("SELECT user_id FROM frozen_wallets WHERE user_id = ANY(CAST(:ids AS varchar[]))"))


def frozen_among(conn: Connection, user_ids: Iterable[str]) -> set[str]:
    """Which of ``user_ids`` have a frozen wallet."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return set()
    if len(wanted) == 1:
        return {r[0] for r in _FROZEN_ONE.rows(conn, {"id": wanted[0]})}
    if conn.dialect.name == "postgresql":
        return {r[0] for r in _FROZEN_ANY.rows(conn, {"ids": wanted})}
    return {r[0] for r in conn.execute(_FROZEN_AMONG, {"ids": wanted})}
