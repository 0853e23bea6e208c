"""The payments schema and configuration: the migration matches tables.py on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from libs.storage import Database, downgrade, upgrade
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS
from services.payments.store.tables import metadata


async def test_migration_matches_tables(database_url: str) -> None:
    """The migration creates exactly what tables.py declares, and downgrades to nothing."""
    db = Database(database_url)
    try:
        await upgrade(db, MIGRATIONS)

        def diff(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        await downgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
    finally:
        await db.dispose()


def test_config_reads_the_environment() -> None:
    """FURIMA_PAYMENTS_* settings are parsed; defaults are port 50052 and svc-payments."""
    assert (PaymentsConfig().port, PaymentsConfig().client_id) == (50052, "svc-payments")
    config = PaymentsConfig.from_env({"FURIMA_PAYMENTS_PORT": "6000", "FURIMA_PAYMENTS_IDEMPOTENCY_HOURS": "72"})
    assert (config.port, config.idempotency_retention) == (6000, timedelta(hours=72))


def test_config_refuses_a_retention_under_a_day() -> None:
    """Keeping idempotency keys under 24 hours would break the contract: refused at start-up."""
    with pytest.raises(ValueError, match="at least 24"):
        PaymentsConfig.from_env({"FURIMA_PAYMENTS_IDEMPOTENCY_HOURS": "12"})
