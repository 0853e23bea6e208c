"""The TnS schema: the migration creates what tables.py declares, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from libs.storage import Database, upgrade
from services.tns.container import MIGRATIONS
from services.tns.store.tables import metadata


async def test_migration_matches_tables(database_url: str) -> None:
    """The migration creates exactly what tables.py declares (columns, types, indexes)."""
    db = Database(database_url)
    try:
        await upgrade(db, MIGRATIONS)

        def diff(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()
