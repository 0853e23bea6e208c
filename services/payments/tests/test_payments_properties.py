"""Property: any sequence of payment operations on the real store keeps every account
within its floor, every transfer balanced, and the per-currency sum at zero — and a
payment's books add up (captured ≥ refunded, funding returned ≤ funding paid).
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from libs.clock import FrozenClock
from libs.errors import DomainError
from libs.storage import Database, upgrade
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS, assemble
from services.payments.domain.payments import Remainder
from services.payments.store.tables import accounts
from services.payments.tests.conftest import START
from services.payments.tests.payments_helpers import ScriptedRisk, grant, open_credit, order, top_up

BUYERS = ("usr_b1", "usr_b2")
amounts = st.integers(min_value=1, max_value=3000)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.sampled_from(BUYERS), amounts, st.sampled_from(list(Remainder)), st.booleans()),
        st.tuples(st.just("capture"), st.integers(0, 30), st.one_of(st.none(), amounts)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("complete"), st.integers(0, 30)),
        st.tuples(st.just("refund"), st.integers(0, 30), st.one_of(st.none(), amounts)),
        st.tuples(st.just("review"), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("expire"), st.integers(1, 10)),
        st.tuples(st.just("risk"), st.sampled_from(BUYERS), st.sampled_from(["APPROVE", "REVIEW", "DECLINE"])),
    ),
    max_size=25,
)


async def _run(ops: list[tuple[Any, ...]], workdir: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{workdir}/p.db")
    await upgrade(db, MIGRATIONS)
    clock = FrozenClock(START)
    risk = ScriptedRisk()
    c = assemble(PaymentsConfig(database_url=db.url), db, clock, risk=risk)
    try:
        for i, buyer in enumerate(BUYERS):
            await top_up(c, buyer, 4000)
            await grant(c, clock, buyer, 500, f"g{i}", days=3)
            await open_credit(c, buyer, 2000)
        made: list[str] = []

        def pick(index: int) -> str | None:
            return made[index % len(made)] if made else None

        for n, op in enumerate(ops):
            key = f"k{n}"
            try:
                match op:
                    case ("pay", buyer, amount, remainder, capture):
                        token = "tok_ok" if remainder is Remainder.CARD else ""
                        request = order(key, amount, buyer_id=buyer, remainder=remainder, card_token=token)
                        made.append((await c.payments.create("svc", request)).payment_id)
                        if capture:
                            await c.payments.capture("svc", key + "c", made[-1], None, None)
                    case ("capture", index, amount):
                        if (target := pick(index)) is not None:
                            await c.payments.capture("svc", key, target, amount, None if amount is None else "JPY")
                    case ("cancel", index):
                        if (target := pick(index)) is not None:
                            await c.payments.cancel("svc", key, target, "")
                    case ("complete", index):
                        if (target := pick(index)) is not None:
                            await c.payments.complete("svc", key, target)
                    case ("refund", index, amount):
                        if (target := pick(index)) is not None:
                            currency = None if amount is None else "JPY"
                            await c.payments.refund("svc", key, target, amount, currency, "")
                    case ("review", index, approve):
                        if (target := pick(index)) is not None:
                            await c.payments.review("svc", key, target, bool(approve), "")
                    case ("expire", days):
                        clock.advance(timedelta(days=days).total_seconds())
                        await c.housekeeping.run_once()
                    case ("risk", buyer, decision):
                        risk.decisions[str(buyer)] = str(decision)
            except DomainError:
                pass  # refusals are fine; what matters is that they change nothing
            async with db.read() as conn:
                rows = (await conn.execute(select(accounts.c.id, accounts.c.balance, accounts.c.floor))).all()
            assert all(r.floor is None or r.balance >= r.floor for r in rows), rows
            assert all(not r.id.endswith("/credit/JPY") or r.balance <= 0 for r in rows), rows
        report = await c.ledger.verify()
        assert report.consistent, report
        for payment_id in made:
            p = await c.payments.get(payment_id)
            assert 0 <= p.refunded <= p.captured <= p.amount
            assert all(0 <= line.returned <= line.amount for line in p.funding)
            assert sum(line.amount for line in p.funding) in (0, p.amount)
    finally:
        await db.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_any_sequence_of_operations_keeps_the_ledger_sound(ops: list[tuple[Any, ...]]) -> None:
    """Floors hold after every step; the ledger verifies and each payment adds up at the end."""
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(_run(ops, Path(workdir)))
