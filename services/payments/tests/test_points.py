"""Points grants with idempotency, and the wallet views, on a real database."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from furima.payments.v1 import events_pb2
from sqlalchemy import func, select

from libs.clock import FrozenClock
from libs.errors import Aborted, InvalidArgument
from libs.storage import Database, Transaction
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind
from services.payments.domain.points import GrantRequest, PointsGrant
from services.payments.service.idempotency import IdempotentCalls
from services.payments.store.tables import idempotency_keys, outbox, points_lots, transfers
from services.payments.tests.conftest import START

REQUEST = GrantRequest("grant-1", "usr_a", 500, "JPY", "spring", START + timedelta(days=30), "spring campaign")


async def count(db: Database, table: object) -> int:
    """Rows in a table."""
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_grant_moves_budget_to_points_with_a_lot_and_an_event(payments: PaymentsContainer, db: Database) -> None:
    """A grant debits the campaign budget, credits the user's points, records a lot and a PointsGranted event."""
    grant = await payments.points.grant("svc-marketing", REQUEST)
    wallet = await payments.wallet.balance("usr_a")
    assert [(b.kind, b.balance) for b in wallet.balances] == [(AccountKind.POINTS, 500)]
    assert [(lot.lot_id, lot.remaining, lot.expires_at) for lot in wallet.points_lots] == [
        (grant.grant_id, 500, START + timedelta(days=30))
    ]
    async with db.read() as conn:
        event = (await conn.execute(select(outbox))).one()
    payload = events_pb2.PointsGranted.FromString(event.payload)
    assert (event.type, event.aggregate_id) == ("furima.payments.v1.PointsGranted", "usr_a")
    assert (payload.grant_id, payload.amount.amount, payload.campaign_id) == (grant.grant_id, 500, "spring")
    found = await payments.ledger.verify()
    assert found.consistent
    assert found.currency_sums == (("JPY", 0),)


async def test_replay_returns_the_first_grant_and_moves_nothing(
    payments: PaymentsContainer, db: Database, clock: FrozenClock
) -> None:
    """The same key and request again, an hour later, returns the first grant; one transfer, one lot, one event."""
    first = await payments.points.grant("svc-marketing", REQUEST)
    clock.advance(3600)
    again = await payments.points.grant("svc-marketing", REQUEST)
    assert again == first
    assert [await count(db, t) for t in (transfers, points_lots, outbox, idempotency_keys)] == [1, 1, 1, 1]


async def test_key_reused_for_another_request_is_refused(payments: PaymentsContainer, db: Database) -> None:
    """The same key with another amount → INVALID_ARGUMENT, reason IDEMPOTENCY_KEY_REUSED; nothing moves."""
    await payments.points.grant("svc-marketing", REQUEST)
    with pytest.raises(InvalidArgument) as caught:
        await payments.points.grant("svc-marketing", dataclasses.replace(REQUEST, amount=501))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [v.field for v in caught.value.violations] == ["idempotency_key"]
    assert await count(db, transfers) == 1


async def test_keys_belong_to_the_calling_client(payments: PaymentsContainer, db: Database) -> None:
    """Two clients using the same key string get two grants."""
    a = await payments.points.grant("svc-marketing", REQUEST)
    b = await payments.points.grant("svc-other", REQUEST)
    assert a.grant_id != b.grant_id
    assert (await payments.wallet.balance("usr_a")).balances[0].balance == 1000


async def test_concurrent_same_key_has_one_effect(payments: PaymentsContainer, db: Database) -> None:
    """Ten concurrent calls with one key: one grant; every other call is ABORTED or replays it."""
    results = await asyncio.gather(
        *(payments.points.grant("svc-marketing", REQUEST) for _ in range(10)), return_exceptions=True
    )
    grants = {r.grant_id for r in results if isinstance(r, PointsGrant)}
    assert len(grants) == 1
    assert all(isinstance(r, PointsGrant | Aborted) for r in results)
    assert all(r.reason == "IDEMPOTENCY_KEY_IN_FLIGHT" for r in results if isinstance(r, Aborted))
    assert [await count(db, t) for t in (transfers, outbox)] == [1, 1]


async def test_in_flight_key_in_another_process(db: Database, clock: FrozenClock) -> None:
    """A key held by another process's open transaction: ABORTED on PostgreSQL; on SQLite the
    single writer makes the second call wait and replay.
    """
    first, second = (IdempotentCalls(db, clock, timedelta(hours=24)) for _ in range(2))
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(tx: Transaction) -> str:
        entered.set()
        await release.wait()
        return "first"

    async def fast(tx: Transaction) -> str:
        return "second"

    holder = asyncio.create_task(first.run("c:Op", "k", "h", slow))
    await entered.wait()
    contender = asyncio.create_task(second.run("c:Op", "k", "h", fast))
    if db.dialect == "postgresql":
        with pytest.raises(Aborted):
            await contender
        release.set()
        assert await holder == "first"
    else:
        release.set()
        assert (await holder, await contender) == ("first", "first")


async def test_keys_are_kept_a_day_then_purged(payments: PaymentsContainer, db: Database, clock: FrozenClock) -> None:
    """A key survives 24 hours (the configured 48 by default) and is purged after its retention."""
    await payments.points.grant("svc-marketing", REQUEST)
    clock.advance(24 * 3600)
    assert await payments.calls.purge_expired() == 0
    clock.advance(24 * 3600)
    assert await payments.calls.purge_expired() == 1
    assert await count(db, idempotency_keys) == 0


async def test_invalid_grant_is_refused_and_writes_nothing(payments: PaymentsContainer, db: Database) -> None:
    """No amount, or an expiry already past → INVALID_ARGUMENT naming the field; nothing is written."""
    for bad, field in (
        (dataclasses.replace(REQUEST, amount=0), "amount.amount"),
        (dataclasses.replace(REQUEST, expires_at=START - timedelta(days=1)), "expires_at"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            await payments.points.grant("svc-marketing", bad)
        assert [v.field for v in caught.value.violations] == [field]
    assert [await count(db, t) for t in (idempotency_keys, transfers)] == [0, 0]


async def test_replay_after_the_points_expired_still_answers(payments: PaymentsContainer, clock: FrozenClock) -> None:
    """A retry arriving after the granted points expired gets the first grant, not a validation error."""
    brief = dataclasses.replace(REQUEST, expires_at=START + timedelta(hours=1))
    first = await payments.points.grant("svc-marketing", brief)
    clock.advance(2 * 3600)
    assert await payments.points.grant("svc-marketing", brief) == first


async def test_expired_lots_leave_the_wallet_view(payments: PaymentsContainer, clock: FrozenClock) -> None:
    """Lots are listed soonest expiry first and disappear from the view once expired."""
    await payments.points.grant("svc-marketing", REQUEST)
    short = dataclasses.replace(REQUEST, idempotency_key="grant-2", amount=50, expires_at=START + timedelta(days=1))
    await payments.points.grant("svc-marketing", short)
    assert [lot.granted for lot in (await payments.wallet.balance("usr_a")).points_lots] == [50, 500]
    clock.advance(2 * 86400)
    assert [lot.granted for lot in (await payments.wallet.balance("usr_a")).points_lots] == [500]


async def test_history_pages_newest_first(payments: PaymentsContainer) -> None:
    """The history lists the user's entries newest first, in pages that do not overlap."""
    for n in range(5):
        await payments.points.grant(
            "svc-marketing", dataclasses.replace(REQUEST, idempotency_key=f"k{n}", amount=n + 1)
        )
    first = await payments.wallet.history("usr_a", None, 3)
    rest = await payments.wallet.history("usr_a", first[-1].entry_id, 3)
    assert [line.amount for line in first + rest] == [5, 4, 3, 2, 1]
    assert {line.kind for line in first} == {"points_grant"}
