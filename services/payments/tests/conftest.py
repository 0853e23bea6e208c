"""Fixtures of the payments tests: a migrated database and the use cases on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libs.clock import FrozenClock
from libs.storage import Database, upgrade
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS, PaymentsContainer, assemble
from services.payments.service.bank_gateway import SimulatedBank

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
async def bank(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[SimulatedBank]:
    """Provide a simulated bank with its own books, answering at once."""
    simulated = await SimulatedBank.open(f"sqlite+aiosqlite:///{tmp_path}/bank.db", clock=clock, seed=1)
    yield simulated
    await simulated.close()


@pytest.fixture
def payments(db: Database, clock: FrozenClock, bank: SimulatedBank) -> PaymentsContainer:
    """Provide the wired use cases on the test database."""
    return assemble(PaymentsConfig(database_url=db.url), db, clock, bank=bank)
