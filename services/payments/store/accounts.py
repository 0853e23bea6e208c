"""Accounts and their balances; every balance change is a guarded UPDATE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payments.domain.accounts import Account, AccountKind
from services.payments.store.tables import accounts


def ensure(conn: Connection, wanted: Sequence[Account], now: datetime) -> None:
    """Open the accounts that do not exist yet (an existing account keeps its floor)."""
    if not wanted:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    rows = [
        {
            "id": a.account_id,
            "owner": a.owner,
            "kind": a.kind.value,
            "currency": a.currency,
            "floor": a.floor,
            "balance": 0,
            "created_at": now,
        }
        for a in sorted(wanted, key=lambda a: a.account_id)
    ]
    conn.execute(insert(accounts).on_conflict_do_nothing(index_elements=["id"]), rows)


def add_to_balance(conn: Connection, account_id: str, delta: int) -> int | None:
    """Move ``account_id``'s balance by ``delta`` unless that crosses its floor.

    The guard is in the WHERE clause, so it holds under any concurrency: on PostgreSQL a
    second writer waits for the row and re-checks the guard on the committed balance; on
    SQLite writers are serialized. Returns the new balance, or None when refused.
    """
    new_balance = accounts.c.balance + delta
    stmt = (
        update(accounts)
        .where(and_(accounts.c.id == account_id, or_(accounts.c.floor.is_(None), new_balance >= accounts.c.floor)))
        .values(balance=new_balance)
        .returning(accounts.c.balance)
    )
    value = conn.execute(stmt).scalar_one_or_none()
    return None if value is None else int(value)


def _account(row: Row[Any, Any, Any, Any, Any, Any]) -> Account:
    return Account(row.id, row.owner, AccountKind(row.kind), row.currency, row.floor)


async def owned_by(conn: AsyncConnection, owner: str) -> list[tuple[Account, int]]:
    """The accounts of ``owner`` with their balances, by kind and currency."""
    a = accounts.c
    query = select(a.id, a.owner, a.kind, a.currency, a.floor, a.balance).where(a.owner == owner)
    rows = (await conn.execute(query.order_by(a.kind, a.currency))).all()
    return [(_account(r), int(r.balance)) for r in rows]


async def balance_of(conn: AsyncConnection, account_id: str) -> int | None:
    """The balance of one account (None when it does not exist)."""
    value = await conn.scalar(select(accounts.c.balance).where(accounts.c.id == account_id))
    return None if value is None else int(value)


def balances_of(conn: Connection, account_ids: Sequence[str], *, lock: bool = False) -> dict[str, int]:
    """The balances of the accounts that exist among ``account_ids``; ``lock`` takes their
    row locks (PostgreSQL) for a decision that depends on them.
    """
    if not account_ids:
        return {}
    query = select(accounts.c.id, accounts.c.balance).where(accounts.c.id.in_(sorted(set(account_ids))))
    if lock and conn.dialect.name == "postgresql":
        query = query.order_by(accounts.c.id).with_for_update()
    return {r.id: int(r.balance) for r in conn.execute(query)}
