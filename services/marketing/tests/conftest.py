"""Fixtures of the marketing tests: a migrated marketing database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.storage import Database, upgrade
from services.marketing.container import MIGRATIONS


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """Provide an empty, migrated marketing database (SQLite, and PostgreSQL when configured)."""
    database = Database(database_url)
    await upgrade(database, MIGRATIONS)
    yield database
    await database.dispose()
