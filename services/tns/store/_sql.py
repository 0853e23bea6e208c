"""Small SQL helpers shared by the TnS repositories."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Iterable[str], update: Iterable[str]
) -> None:
    """Insert ``rows``, updating the ``update`` columns of rows whose ``keys`` exist."""
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={name: stmt.excluded[name] for name in update})
    await conn.execute(stmt, list(rows))
