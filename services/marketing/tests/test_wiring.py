"""The marketing schema and configuration: the migration matches the table definitions on
every backend, and the settings parse.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from libs.storage import Database, downgrade, upgrade
from services.marketing.config import MarketingConfig
from services.marketing.container import MIGRATIONS
from services.marketing.store.schema import metadata


async def test_migration_matches_tables(database_url: str) -> None:
    """The migration creates exactly what the store modules declare, and downgrades to nothing."""
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
    """FURIMA_MARKETING_* settings are parsed; the defaults are port 50054 and svc-marketing."""
    assert (MarketingConfig().port, MarketingConfig().client_id) == (50054, "svc-marketing")
    config = MarketingConfig.from_env({"FURIMA_MARKETING_PORT": "6001", "FURIMA_MARKETING_HOLDOUT_BPS": "250"})
    assert (config.port, config.holdout_bps) == (6001, 250)
    with pytest.raises(ValueError, match="HOLDOUT_BPS"):
        MarketingConfig.from_env({"FURIMA_MARKETING_HOLDOUT_BPS": "10001"})
