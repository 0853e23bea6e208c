"""Payments under concurrency on SQLite and PostgreSQL: no overdraft, no refund beyond the
capture, one effect per idempotency key, a clean ledger afterwards.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from libs.clock import FrozenClock
from libs.errors import Aborted, DomainError, FailedPrecondition
from libs.storage import Database
from services.payments.config import PaymentsConfig
from services.payments.container import PaymentsContainer, assemble
from services.payments.domain.accounts import AccountKind
from services.payments.domain.payments import Payment
from services.payments.store.tables import payments
from services.payments.tests.payments_helpers import ScriptedRisk, balances, order, top_up

SVC = "svc-orders"


@pytest.fixture
async def c(db: Database, clock: FrozenClock) -> AsyncIterator[PaymentsContainer]:
    """Provide the payments use cases; the ledger must verify after the test."""
    container = assemble(PaymentsConfig(database_url=db.url), db, clock, risk=ScriptedRisk())
    yield container
    report = await container.ledger.verify()
    assert report.consistent, report


async def test_concurrent_payments_never_overdraw_one_wallet(c: PaymentsContainer) -> None:
    """30 concurrent ¥700 payments from ¥5,000: exactly 7 succeed, ¥100 is left."""
    await top_up(c, "usr_buyer", 5000)
    results = await asyncio.gather(
        *(c.payments.create(SVC, order(f"o{i}", 700, capture=True)) for i in range(30)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, Payment)]
    refused = [r for r in results if isinstance(r, FailedPrecondition)]
    assert (len(made), len(refused)) == (7, 23)
    assert {r.reason for r in refused} == {"INSUFFICIENT_FUNDS"}
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 100}


async def test_concurrent_refunds_never_exceed_the_capture(c: PaymentsContainer) -> None:
    """20 concurrent ¥100 refunds of a ¥1,000 payment: exactly 10 succeed."""
    await top_up(c, "usr_buyer", 1000)
    payment = await c.payments.create(SVC, order("o1", 1000, capture=True))
    results = await asyncio.gather(
        *(c.payments.refund(SVC, f"r{i}", payment.payment_id, 100, "JPY", "") for i in range(20)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, tuple)) == 10
    # Refused as more than is left, or (once everything went back) as refunding a REFUNDED payment.
    assert {r.reason for r in results if isinstance(r, DomainError)} <= {
        "REFUND_EXCEEDS_CAPTURED",
        "ILLEGAL_TRANSITION",
    }
    assert (await c.payments.get(payment.payment_id)).refunded == 1000
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 1000}


async def test_the_same_key_sent_concurrently_has_one_effect(c: PaymentsContainer, db: Database) -> None:
    """Ten copies of one CreatePayment at once: one payment; the others replay it or are ABORTED."""
    await top_up(c, "usr_buyer", 1000)
    results = await asyncio.gather(
        *(c.payments.create(SVC, order("same", 300, capture=True)) for _ in range(10)), return_exceptions=True
    )
    made = {r.payment_id for r in results if isinstance(r, Payment)}
    assert len(made) == 1
    assert all(isinstance(r, Payment | Aborted) for r in results)
    async with db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(payments)) == 1
    assert await balances(c, "usr_buyer") == {AccountKind.CASH: 700}


async def test_payments_and_refunds_interleaved_keep_the_books(c: PaymentsContainer) -> None:
    """Random payments, captures, refunds and cancels racing on one wallet: the balance is
    what the successful operations say, never negative, and the ledger verifies.
    """
    rng = random.Random(7)
    await top_up(c, "usr_buyer", 6000)
    made = [await c.payments.create(SVC, order(f"seed{i}", 400)) for i in range(5)]

    async def one(i: int) -> None:
        action = rng.choice(["pay", "pay", "refund", "capture", "cancel"])
        target = rng.choice(made)
        try:
            if action == "pay":
                made.append(await c.payments.create(SVC, order(f"p{i}", rng.randint(100, 900), capture=True)))
            elif action == "refund":
                await c.payments.refund(SVC, f"r{i}", target.payment_id, rng.randint(50, 300), "JPY", "")
            elif action == "capture":
                await c.payments.capture(SVC, f"c{i}", target.payment_id, None, None)
            else:
                await c.payments.cancel(SVC, f"x{i}", target.payment_id, "")
        except FailedPrecondition:
            pass

    await asyncio.gather(*(one(i) for i in range(60)))
    final = [await c.payments.get(p.payment_id) for p in made]
    spent = sum(p.captured - p.refunded for p in final) + sum(
        p.amount for p in final if p.status.value in ("AUTHORIZED", "IN_REVIEW")
    )
    cash = (await balances(c, "usr_buyer")).get(AccountKind.CASH, 0)
    assert cash >= 0
    assert cash == 6000 - spent
