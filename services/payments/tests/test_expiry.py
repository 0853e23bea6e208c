"""Expired points go back to their campaign's budget, once, even from a frozen wallet."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from furima.payments.v1 import events_pb2
from sqlalchemy import select

from libs.clock import FrozenClock
from libs.storage import Database
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind
from services.payments.domain.points import GrantRequest
from services.payments.store import frozen as frozen_repo
from services.payments.store.tables import outbox
from services.payments.tests.conftest import START

SOON = GrantRequest("grant-soon", "usr_a", 300, "JPY", "spring", START + timedelta(days=1))
LATER = GrantRequest("grant-later", "usr_a", 200, "JPY", "spring", START + timedelta(days=30))


async def _points(payments: PaymentsContainer) -> int:
    balance = await payments.wallet.balance("usr_a")
    return sum(b.balance for b in balance.balances if b.kind is AccountKind.POINTS)


async def test_sweep_returns_expired_points_once_and_keeps_the_ledger_sound(
    payments: PaymentsContainer, db: Database, clock: FrozenClock
) -> None:
    """Two days on, the 300 expiring points leave (the later 200 stay) with one event; sweeps never double it."""
    await payments.points.grant("svc-marketing", SOON)
    await payments.points.grant("svc-marketing", LATER)
    assert await payments.expiry.sweep_once() == 0
    clock.advance(timedelta(days=2).total_seconds())
    async with db.transaction() as tx:  # a frozen wallet still loses its expired points
        await frozen_repo.freeze(tx.conn, "usr_a", "suspended", clock.now())
    assert await asyncio.gather(payments.expiry.sweep_once(), payments.expiry.sweep_once()) in ([1, 0], [0, 1])
    assert await payments.expiry.sweep_once() == 0
    assert await _points(payments) == 200
    async with db.read() as conn:
        types = [r[0] for r in await conn.execute(select(outbox.c.type))]
    assert types.count(events_pb2.PointsExpired.DESCRIPTOR.full_name) == 1
    report = await payments.ledger.verify()
    assert report.consistent


async def test_housekeeping_round_expires_points_and_forgets_old_keys(
    payments: PaymentsContainer, clock: FrozenClock
) -> None:
    """Three days on: the expiring lot is swept and both grants' idempotency keys (48 h) are forgotten."""
    await payments.points.grant("svc-marketing", SOON)
    await payments.points.grant("svc-marketing", LATER)
    assert await payments.housekeeping.run_once() == (0, 0, 0)
    clock.advance(timedelta(days=3).total_seconds())
    assert await payments.housekeeping.run_once() == (1, 0, 2)
