"""Accounts and their balances; every balance change is a guarded UPDATE.

The hot statements are built once with bound parameters and run as `Prepared`
statements: compiled once, straight on the DBAPI cursor (SQLAlchemy's execution of a
cached statement cost more than SQLite running it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.storage import Prepared, settle_late
from services.payments.domain.accounts import Account, AccountKind
from services.payments.store.ledger import PENDING_TRANSFERS
from services.payments.store.tables import accounts

_a = accounts.c
_ENSURE = {
    name: Prepared(
        dialect.insert(accounts).on_conflict_do_nothing(index_elements=["id"]),
        column_keys=("id", "owner", "kind", "currency", "floor", "balance", "created_at"),
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# The guard is in the WHERE clause, so it holds under any concurrency: on PostgreSQL a
# second writer waits for the row and re-checks it on the committed balance; on SQLite
# writers are serialized.
_ADD = Prepared(
    update(accounts)
    .where(_a.id == bindparam("account"), or_(_a.floor.is_(None), _a.balance + bindparam("delta") >= _a.floor))
    .values(balance=_a.balance + bindparam("delta"))
    .returning(_a.balance)
)


class KnownAccounts:
    """Account ids this process has opened or moved, so a transfer between them skips
    opening them again (one statement less per transfer). An id may be remembered by a
    transaction that then rolled back: the ledger opens the account and retries when the
    guarded update finds no row.
    """

    def __init__(self) -> None:
        self._known: set[str] = set()

    def missing(self, wanted: Iterable[Account]) -> list[Account]:
        """The accounts not known to exist."""
        return [a for a in wanted if a.account_id not in self._known]

    def knows(self, account_id: str) -> bool:
        """Whether the account was skipped as known."""
        return account_id in self._known

    def remember(self, ids: Iterable[str]) -> None:
        """Record accounts seen in a transfer."""
        self._known.update(ids)


def ensure(conn: Connection, wanted: Sequence[Account], now: datetime) -> None:
    """Open the accounts that do not exist yet (an existing account keeps its floor)."""
    if not wanted:
        return
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
    _ENSURE[conn.dialect.name].run_many(conn, rows)


# PostgreSQL: every leg of a transfer in one round trip. The rows are locked first, in
# account id order (the ledger's one lock order, so two transfers never deadlock); each
# leg keeps its floor guard, re-checked on the newest balance if another writer moved it.
_ADD_ALL = Prepared(
    text(
        """
    WITH moves AS (
        SELECT m.id, m.delta FROM unnest(CAST(:ids AS varchar[]), CAST(:deltas AS bigint[])) AS m(id, delta)
    ), locked AS (
        SELECT a.id FROM accounts AS a WHERE a.id IN (SELECT id FROM moves) ORDER BY a.id FOR NO KEY UPDATE
    )
    UPDATE accounts AS a SET balance = a.balance + moves.delta
    FROM moves JOIN locked ON locked.id = moves.id
    WHERE a.id = moves.id AND (a.floor IS NULL OR a.balance + moves.delta >= a.floor)
    RETURNING a.id
    """
    )
)


# PostgreSQL: the balance moves of a unit's transfers wait under this key (see
# `Ledger.post`) and go in one statement at its end; a read of balances in the same
# transaction settles them first (`settle_moves`).
PENDING_MOVES = "accounts.pending_moves"


def settle_moves(conn: Connection) -> None:
    """Apply the transaction's pending balance moves now, so that a read sees them (and
    write its pending transfers first: they open the accounts the moves update).
    """
    settle_late(conn, PENDING_TRANSFERS)
    settle_late(conn, PENDING_MOVES)


def add_to_balances(conn: Connection, moves: Sequence[tuple[str, int]]) -> set[str]:
    """PostgreSQL: move several accounts' balances (distinct ids) in one statement, each
    unless that crosses its floor. Returns the ids moved; a refused or missing account is
    not among them (and the caller's transaction must then roll back).
    """
    ids, deltas = [account_id for account_id, _ in moves], [delta for _, delta in moves]
    return {row[0] for row in _ADD_ALL.rows(conn, {"ids": ids, "deltas": deltas})}


def add_to_balance(conn: Connection, account_id: str, delta: int) -> int | None:
    """Move ``account_id``'s balance by ``delta`` unless that crosses its floor. Returns the
    new balance, or None when refused.
    """
    value = _ADD.scalar(conn, {"account": account_id, "delta": delta})
    return None if value is None else int(value)


def _account(row: Row[Any, Any, Any, Any, Any, Any]) -> Account:
    return Account(row.id, row.owner, AccountKind(row.kind), row.currency, row.floor)


async def owned_by(conn: AsyncConnection, owner: str) -> list[tuple[Account, int]]:
    """The accounts of ``owner`` with their balances, by kind and currency."""
    query = select(_a.id, _a.owner, _a.kind, _a.currency, _a.floor, _a.balance).where(_a.owner == owner)
    rows = (await conn.execute(query.order_by(_a.kind, _a.currency))).all()
    return [(_account(r), int(r.balance)) for r in rows]


async def balance_of(conn: AsyncConnection, account_id: str) -> int | None:
    """The balance of one account (None when it does not exist)."""
    value = await conn.scalar(select(_a.balance).where(_a.id == account_id))
    return None if value is None else int(value)


def balances_of(conn: Connection, account_ids: Sequence[str], *, lock: bool = False) -> dict[str, int]:
    """The balances of the accounts that exist among ``account_ids``; ``lock`` takes their
    row locks (PostgreSQL) for a decision that depends on them.
    """
    if not account_ids:
        return {}
    settle_moves(conn)
    query = select(_a.id, _a.balance).where(_a.id.in_(sorted(set(account_ids))))
    if lock and conn.dialect.name == "postgresql":
        query = query.order_by(_a.id).with_for_update()
    return {r.id: int(r.balance) for r in conn.execute(query)}
