"""Small SQL helpers shared by the TnS repositories."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Executable, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def upsert_statement(dialect: str, table: Table, keys: Iterable[str], update: Iterable[str]) -> Executable:
    """INSERT that updates the ``update`` columns of rows whose ``keys`` exist (built once
    per table and columns: a new statement object per call costs a cache-key walk).
    """
    return _upsert(dialect, table, tuple(keys), tuple(update))


@functools.cache
def _upsert(dialect: str, table: Table, keys: tuple[str, ...], update: tuple[str, ...]) -> Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={name: stmt.excluded[name] for name in update})


async def upsert(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Iterable[str], update: Iterable[str]
) -> None:
    """Insert ``rows``, updating the ``update`` columns of rows whose ``keys`` exist."""
    if rows:
        await conn.execute(upsert_statement(conn.dialect.name, table, keys, update), list(rows))
