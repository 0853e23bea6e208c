"""Points lots: one per grant, shrinking as points are spent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payments.domain.points import PointsLot
from services.payments.store.tables import points_lots

_INSERT_LOT = insert(points_lots)


def add(conn: Connection, lot: PointsLot, account_id: str, transfer_id: str, now: datetime) -> None:
    """Record a new lot."""
    conn.execute(
        _INSERT_LOT,
        {
            "id": lot.lot_id,
            "user_id": lot.user_id,
            "account_id": account_id,
            "transfer_id": transfer_id,
            "campaign_id": lot.campaign_id,
            "granted": lot.granted,
            "remaining": lot.remaining,
            "currency": lot.currency,
            "expires_at": lot.expires_at,
            "created_at": now,
        },
    )


async def unspent(conn: AsyncConnection, user_id: str, now: datetime) -> list[PointsLot]:
    """A user's lots with points left that have not expired, soonest expiry first."""
    p = points_lots.c
    query = (
        select(p.id, p.user_id, p.granted, p.remaining, p.currency, p.campaign_id, p.expires_at)
        .where(p.user_id == user_id, p.remaining > 0, p.expires_at > now)
        .order_by(p.expires_at, p.id)
    )
    rows = (await conn.execute(query)).all()
    return [
        PointsLot(r.id, r.user_id, int(r.granted), int(r.remaining), r.currency, r.campaign_id, r.expires_at)
        for r in rows
    ]


async def expired(conn: AsyncConnection, now: datetime, limit: int) -> list[PointsLot]:
    """Lots past their expiry with points left, oldest expiry first."""
    p = points_lots.c
    query = (
        select(p.id, p.user_id, p.granted, p.remaining, p.currency, p.campaign_id, p.expires_at)
        .where(p.remaining > 0, p.expires_at <= now)
        .order_by(p.expires_at, p.id)
        .limit(limit)
    )
    rows = (await conn.execute(query)).all()
    return [
        PointsLot(r.id, r.user_id, int(r.granted), int(r.remaining), r.currency, r.campaign_id, r.expires_at)
        for r in rows
    ]


async def take_remaining(conn: AsyncConnection, lot_id: str, expected: int) -> bool:
    """Set the lot's remaining points to zero if they are still ``expected``; True on
    success (False: spent or swept meanwhile, so nothing may move).
    """
    result = await conn.execute(
        update(points_lots).where(points_lots.c.id == lot_id, points_lots.c.remaining == expected).values(remaining=0)
    )
    return bool(result.rowcount)


def spendable(conn: Connection, user_id: str, currency: str, now: datetime) -> list[PointsLot]:
    """A user's unexpired lots with points left in ``currency``, soonest expiry first."""
    p = points_lots.c
    query = (
        select(p.id, p.user_id, p.granted, p.remaining, p.currency, p.campaign_id, p.expires_at)
        .where(p.user_id == user_id, p.currency == currency, p.remaining > 0, p.expires_at > now)
        .order_by(p.expires_at, p.id)
    )
    return [
        PointsLot(r.id, r.user_id, int(r.granted), int(r.remaining), r.currency, r.campaign_id, r.expires_at)
        for r in conn.execute(query)
    ]


def spend(conn: Connection, lot_id: str, points: int) -> bool:
    """Take ``points`` from a lot if it still has them (guarded); False otherwise."""
    p = points_lots.c
    result = conn.execute(
        update(points_lots).where(p.id == lot_id, p.remaining >= points).values(remaining=p.remaining - points)
    )
    return bool(result.rowcount)


def give_back(conn: Connection, lot_id: str, points: int) -> None:
    """Return ``points`` to the lot they were spent from (an expired lot's are swept next round)."""
    p = points_lots.c
    conn.execute(update(points_lots).where(p.id == lot_id).values(remaining=p.remaining + points))
