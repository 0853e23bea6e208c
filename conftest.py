"""Fixtures shared by every test in the monorepo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.testing import POSTGRES_SKIP_REASON, postgres_admin_url, temporary_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, and a fresh PostgreSQL database when configured."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/test.db"
        return
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip(POSTGRES_SKIP_REASON)
    async with temporary_postgres_database(admin) as url:
        yield url
