"""The simulated bank: its own books, idempotent by reference, forced and seeded outcomes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from libs.clock import FrozenClock
from libs.storage import Database
from services.payments.domain.bank import BankInstruction, BankOutcome, Direction
from services.payments.service.bank_gateway import BankTimeout, Behaviour, SimulatedBank, bank_movements
from services.payments.tests.cash_support import ACCOUNT, CLOSED


@pytest.fixture
async def bank(database_url: str, clock: FrozenClock) -> AsyncIterator[SimulatedBank]:
    """Provide a simulated bank on its own database (SQLite, and PostgreSQL when configured)."""
    sim = await SimulatedBank.open(database_url, clock=clock, seed=1)
    yield sim
    await sim.close()


def collect(reference: str, amount: int = 5000, account: str = ACCOUNT) -> BankInstruction:
    """An instruction to collect money from a user's bank account."""
    return BankInstruction(reference, Direction.COLLECT, account, amount, "JPY")


async def rows(bank: SimulatedBank) -> int:
    """How many references the bank has booked."""
    async with bank.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(bank_movements)) or 0)


async def test_a_reference_is_applied_once(bank: SimulatedBank) -> None:
    """Submitting one reference twice returns the first answer and one statement line."""
    first = await bank.submit(collect("btr_1"))
    again = await bank.submit(collect("btr_1"))
    assert first.outcome is BankOutcome.APPLIED
    assert again == first
    lines = await bank.statement()
    assert [(line.reference, line.platform_amount, line.bank_reference) for line in lines] == [
        ("btr_1", 5000, first.bank_reference)
    ]
    assert await bank.status("btr_1") == first
    assert await bank.status("btr_unknown") is None


async def test_concurrent_submissions_book_once(bank: SimulatedBank) -> None:
    """Ten concurrent submissions of one reference: one booking, ten identical answers."""
    answers = await asyncio.gather(*(bank.submit(collect("btr_1")) for _ in range(10)))
    assert len(set(answers)) == 1
    assert await rows(bank) == 1


async def test_closed_accounts_reject_and_stay_off_the_statement(bank: SimulatedBank) -> None:
    """An account ending in 9999999 is rejected (ACCOUNT_CLOSED), even when APPLY is forced."""
    bank.force(CLOSED, Behaviour.APPLY)
    answer = await bank.submit(collect("btr_1", account=CLOSED))
    assert (answer.outcome, answer.reason) == (BankOutcome.REJECTED, "ACCOUNT_CLOSED")
    assert await bank.statement() == []
    assert await bank.status("btr_1") == answer


async def test_a_lost_answer_may_hide_an_applied_transfer(bank: SimulatedBank) -> None:
    """TIMEOUT_AFTER applies and raises; TIMEOUT_BEFORE raises with nothing booked."""
    bank.force("btr_after", Behaviour.TIMEOUT_AFTER)
    bank.force("btr_before", Behaviour.TIMEOUT_BEFORE)
    with pytest.raises(BankTimeout):
        await bank.submit(collect("btr_after"))
    with pytest.raises(BankTimeout):
        await bank.submit(collect("btr_before"))
    applied = await bank.status("btr_after")
    assert applied is not None
    assert applied.outcome is BankOutcome.APPLIED
    assert await bank.status("btr_before") is None
    assert [line.reference for line in await bank.statement()] == ["btr_after"]


async def test_scripts_by_reference_win_and_run_out(bank: SimulatedBank) -> None:
    """A reference's script is used before its account's; once both run out the dice decide (here: apply)."""
    bank.force(ACCOUNT, Behaviour.REJECT)
    bank.force("btr_1", Behaviour.TIMEOUT_BEFORE)
    with pytest.raises(BankTimeout):
        await bank.submit(collect("btr_1"))
    rejected = await bank.submit(collect("btr_1"))
    assert (rejected.outcome, rejected.reason) == (BankOutcome.REJECTED, "REJECTED_BY_BANK")
    assert (await bank.submit(collect("btr_2"))).outcome is BankOutcome.APPLIED
    assert list(bank.calls) == [("submit", "btr_1"), ("submit", "btr_1"), ("submit", "btr_2")]


async def test_payouts_are_negative_on_the_statement(bank: SimulatedBank) -> None:
    """A payout leaves the platform's account: it shows as a negative amount."""
    await bank.submit(BankInstruction("btr_1", Direction.PAY, ACCOUNT, 2800, "JPY"))
    assert [line.platform_amount for line in await bank.statement()] == [-2800]


async def test_seeded_rates_are_repeatable(tmp_path: Path, clock: FrozenClock) -> None:
    """Two banks with one seed draw the same outcomes; the rates show in 300 submissions."""
    outcomes: list[list[str]] = []
    for name in ("one", "two"):
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/{name}.db")
        bank = SimulatedBank(db, clock=clock, failure_rate=0.2, timeout_rate=0.1, seed=42)
        await bank.create_tables()
        seen: list[str] = []
        for n in range(300):
            try:
                seen.append((await bank.submit(collect(f"btr_{n}"))).outcome.value)
            except BankTimeout:
                seen.append("TIMEOUT")
        outcomes.append(seen)
        await bank.close()
    assert outcomes[0] == outcomes[1]
    tally = Counter(outcomes[0])
    assert 15 <= tally["TIMEOUT"] <= 45
    assert 35 <= tally["REJECTED"] <= 85


async def test_latency_is_applied(tmp_path: Path, clock: FrozenClock) -> None:
    """With 30 ms of latency a submission takes at least 30 ms."""
    bank = SimulatedBank(Database(f"sqlite+aiosqlite:///{tmp_path}/slow.db"), clock=clock, latency_ms=30)
    await bank.create_tables()
    started = time.perf_counter()
    await bank.submit(collect("btr_1"))
    assert time.perf_counter() - started >= 0.03
    await bank.close()


def test_rates_outside_zero_to_one_are_refused(tmp_path: Path) -> None:
    """A failure or timeout rate outside [0, 1] is a configuration error."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="failure_rate"):
        SimulatedBank(db, failure_rate=1.5)
    with pytest.raises(ValueError, match="timeout_rate"):
        SimulatedBank(db, timeout_rate=-0.1)
