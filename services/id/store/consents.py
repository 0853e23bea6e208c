"""The consents repository."""

from __future__ import annotations

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.id.domain.consent import Consent
from services.id.domain.scopes import format_scopes, parse_scopes
from services.id.store.tables import consents


def _consent(row: Row[tuple[object, ...]]) -> Consent:
    m = row._mapping
    return Consent(
        user_id=m["user_id"],
        client_id=m["client_id"],
        scopes=parse_scopes(m["scopes"]),
        granted_at=m["granted_at"],
        updated_at=m["updated_at"],
        revoked_at=m["revoked_at"],
    )


async def get(conn: AsyncConnection, user_id: str, client_id: str) -> Consent | None:
    """Return the consent of ``user_id`` to ``client_id`` (active or revoked)."""
    c = consents.c
    row = (await conn.execute(select(consents).where(c.user_id == user_id, c.client_id == client_id))).first()
    return _consent(row) if row else None


async def save(conn: AsyncConnection, consent: Consent, *, exists: bool) -> None:
    """Insert or update a consent."""
    values = {
        "scopes": format_scopes(consent.scopes),
        "granted_at": consent.granted_at,
        "updated_at": consent.updated_at,
        "revoked_at": consent.revoked_at,
    }
    if exists:
        c = consents.c
        await conn.execute(
            update(consents).where(c.user_id == consent.user_id, c.client_id == consent.client_id).values(**values)
        )
    else:
        await conn.execute(insert(consents).values(user_id=consent.user_id, client_id=consent.client_id, **values))


async def active_for_user(conn: AsyncConnection, user_id: str, after: str, limit: int) -> list[Consent]:
    """Return the user's active consents ordered by client id, after the cursor ``after``."""
    c = consents.c
    rows = await conn.execute(
        select(consents)
        .where(c.user_id == user_id, c.revoked_at.is_(None), c.client_id > after)
        .order_by(c.client_id)
        .limit(limit)
    )
    return [_consent(r) for r in rows]
