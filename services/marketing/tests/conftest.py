"""Fixtures of the marketing tests: a database with the marketing schema on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.storage import Database
from services.marketing.store.schema import metadata


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """Provide an empty marketing database (SQLite, and PostgreSQL when configured).

    The schema comes from the table definitions until the marketing migrations exist.
    """
    database = Database(database_url)
    async with database.transaction() as tx:
        await tx.conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()
