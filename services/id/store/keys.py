"""The signing keys repository."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.id.domain.keys import SigningKey
from services.id.store.tables import signing_keys


async def all_keys(conn: AsyncConnection) -> list[SigningKey]:
    """Every key, oldest first."""
    rows = await conn.execute(select(signing_keys).order_by(signing_keys.c.created_at, signing_keys.c.kid))
    return [SigningKey(r.kid, r.private_key_pem, r.created_at, r.retiring_at, r.retired_at) for r in rows]


async def add(conn: AsyncConnection, key: SigningKey, now: datetime) -> None:
    """Store a new key."""
    await conn.execute(
        insert(signing_keys).values(
            kid=key.kid,
            private_key_pem=key.private_pem,
            status=key.status(now).value,
            created_at=key.created_at,
            retiring_at=key.retiring_at,
            retired_at=key.retired_at,
        )
    )


async def save(conn: AsyncConnection, key: SigningKey, now: datetime) -> None:
    """Persist a key's lifecycle timestamps (and its status as of ``now``, for humans)."""
    await conn.execute(
        update(signing_keys)
        .where(signing_keys.c.kid == key.kid)
        .values(status=key.status(now).value, retiring_at=key.retiring_at, retired_at=key.retired_at)
    )
