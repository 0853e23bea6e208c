"""Credit lines: the limits table, the credit account's floor, and the ledger read for statements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Select, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payments.domain.credit import CreditEntry
from services.payments.store.accounts import settle_moves
from services.payments.store.tables import accounts, credit_lines, entries, transfers


def move_floor(conn: Connection, account_id: str, floor: int) -> int | None:
    """Set the account's floor unless its balance is already below it; returns the balance,
    or None when refused (or there is no such account).

    One guarded statement: on PostgreSQL a concurrent transfer holding the row makes this
    wait and re-check the guard on the committed balance, so a purchase and a lowered limit
    never both win past the new floor.
    """
    settle_moves(conn)
    stmt = (
        update(accounts)
        .where(and_(accounts.c.id == account_id, accounts.c.balance >= floor))
        .values(floor=floor)
        .returning(accounts.c.balance)
    )
    value = conn.execute(stmt).scalar_one_or_none()
    return None if value is None else int(value)


def put_limit(conn: Connection, user_id: str, currency: str, limit: int, now: datetime) -> None:
    """Insert or replace the user's limit in ``currency``."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(credit_lines).values(user_id=user_id, currency=currency, credit_limit=limit, updated_at=now)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "currency"],
            set_={"credit_limit": stmt.excluded.credit_limit, "updated_at": stmt.excluded.updated_at},
        )
    )


def _line_query(user_id: str, currency: str) -> Select[int, datetime]:
    c = credit_lines.c
    return select(c.credit_limit, c.updated_at).where(c.user_id == user_id, c.currency == currency)


def limit_of(conn: Connection, user_id: str, currency: str) -> tuple[int, datetime | None]:
    """The user's limit and when it was set ((0, None) without a line)."""
    row = conn.execute(_line_query(user_id, currency)).first()
    return (0, None) if row is None else (int(row.credit_limit), row.updated_at)


def balance_of(conn: Connection, account_id: str) -> int:
    """An account's balance (0 when it is not open)."""
    settle_moves(conn)
    value = conn.scalar(select(accounts.c.balance).where(accounts.c.id == account_id))
    return 0 if value is None else int(value)


def lock_balances(conn: Connection, account_ids: list[str]) -> dict[str, int]:
    """The balances of the open accounts among ``account_ids``, their rows locked on
    PostgreSQL in account-id order (the ledger's lock order, so no deadlock) until the
    transaction ends; SQLite's single writer needs no lock.
    """
    settle_moves(conn)
    a = accounts.c
    query = select(a.id, a.balance).where(a.id.in_(sorted(set(account_ids)))).order_by(a.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {r.id: int(r.balance) for r in conn.execute(query)}


async def read_limit(conn: AsyncConnection, user_id: str, currency: str) -> tuple[int, datetime | None]:
    """`limit_of` on an async connection."""
    row = (await conn.execute(_line_query(user_id, currency))).first()
    return (0, None) if row is None else (int(row.credit_limit), row.updated_at)


async def read_balance(conn: AsyncConnection, account_id: str) -> int:
    """`balance_of` on an async connection."""
    value = await conn.scalar(select(accounts.c.balance).where(accounts.c.id == account_id))
    return 0 if value is None else int(value)


async def balance_before(conn: AsyncConnection, account_id: str, before: datetime) -> int:
    """The sum of the account's entries made before ``before``: its balance at that instant."""
    e = entries.c
    query = select(func.coalesce(func.sum(e.amount), 0)).where(e.account_id == account_id, e.created_at < before)
    return int(await conn.scalar(query) or 0)


async def entries_between(conn: AsyncConnection, account_id: str, start: datetime, end: datetime) -> list[CreditEntry]:
    """The account's entries made in ``[start, end)`` with their transfer's kind, oldest first."""
    e, t = entries.c, transfers.c
    query = (
        select(e.transfer_id, t.kind, e.amount, t.description, e.created_at)
        .join_from(entries, transfers, t.id == e.transfer_id)
        .where(e.account_id == account_id, e.created_at >= start, e.created_at < end)
        .order_by(e.created_at, e.id)
    )
    rows = (await conn.execute(query)).all()
    return [CreditEntry(r.transfer_id, r.kind, int(r.amount), r.description, r.created_at) for r in rows]
