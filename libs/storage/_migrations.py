"""Alembic migrations, run programmatically against an async engine.

Each service keeps its scripts in ``services/<name>/store/migrations``; its ``env.py``
is three lines that call `run_migrations_online`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from libs.storage._database import Database


def _config(script_location: Path, connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(db: Database, script_location: Path, revision: str = "head") -> None:
    """Apply a service's migrations up to ``revision`` (idempotent)."""

    def _run(connection: Connection) -> None:
        command.upgrade(_config(script_location, connection), revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)


async def downgrade(db: Database, script_location: Path, revision: str = "base") -> None:
    """Revert a service's migrations down to ``revision``."""

    def _run(connection: Connection) -> None:
        command.downgrade(_config(script_location, connection), revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)


def run_migrations_online(target_metadata: MetaData) -> None:
    """Body of a service's ``env.py``: migrate on the connection handed over by `upgrade`."""
    connection: Any = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through libs.storage.upgrade (make migrate), not the alembic CLI")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
