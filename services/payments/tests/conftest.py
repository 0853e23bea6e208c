"""Fixtures of the payments tests: a migrated database and the use cases on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from libs.clock import FrozenClock
from libs.storage import Database, upgrade
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS, PaymentsContainer, assemble

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    """Provide a clock that tests move by hand."""
    return FrozenClock(START)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """Provide a migrated payments database (SQLite, and PostgreSQL when configured)."""
    database = Database(database_url)
    await upgrade(database, MIGRATIONS)
    yield database
    await database.dispose()


@pytest.fixture
def payments(db: Database, clock: FrozenClock) -> PaymentsContainer:
    """Provide the wired use cases on the test database."""
    return assemble(PaymentsConfig(database_url=db.url), db, clock)
