"""The bank, seen from payments: a gateway protocol and a simulated bank behind it.

The simulated bank is an external system stand-in: it keeps its own books in its own
database (never the payments schema), answers after a configurable latency, rejects or
loses answers at configurable rates, and is idempotent by our reference — submitting a
reference twice returns the first outcome and moves money once.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import BigInteger, Column, Connection, MetaData, Row, Select, String, Table, Text, select
from sqlalchemy.dialects import postgresql, sqlite

from libs.clock import Clock, SystemClock
from libs.ids import new_ulid
from libs.storage import Database, UtcDateTime
from services.payments.domain.bank import BankAnswer, BankInstruction, BankOutcome, Direction, StatementLine

CLOSED_ACCOUNT_SUFFIX = "9999999"
"""Accounts whose number ends so are closed: the simulated bank rejects every transfer."""


class BankError(Exception):
    """The bank could not be asked or did not answer; nothing is known about the outcome."""


class BankTimeout(BankError):
    """The bank's answer was lost: it may or may not have applied the instruction."""


class BankGateway(Protocol):
    """What payments needs from a bank."""

    async def submit(self, instruction: BankInstruction) -> BankAnswer:
        """Apply ``instruction`` once per reference; a repeat returns the first outcome.

        Raises `BankError` (`BankTimeout` when the bank may have acted).
        """
        ...

    async def status(self, reference: str) -> BankAnswer | None:
        """What the bank did with ``reference``; None when it never received it."""
        ...

    async def statement(self) -> list[StatementLine]:
        """Every movement applied on the platform's account, oldest first."""
        ...


class Behaviour(StrEnum):
    """How the simulated bank treats one submission."""

    APPLY = "apply"
    REJECT = "reject"
    TIMEOUT_BEFORE = "timeout_before"
    """Lost on the way in: nothing happens at the bank."""
    TIMEOUT_AFTER = "timeout_after"
    """Applied (or rejected), but the answer is lost on the way back."""


bank_metadata = MetaData()

# The simulated bank's books: one row per reference it received.
bank_movements = Table(
    "sim_bank_movements",
    bank_metadata,
    Column("reference", String(64), primary_key=True),
    Column("bank_reference", String(40), nullable=False, unique=True),
    Column("direction", String(8), nullable=False),
    Column("account", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("reason", Text, nullable=False),
    Column("booked_at", UtcDateTime(), nullable=False),
)


class SimulatedBank:
    """A bank with its own database, latency, rejection and timeout rates.

    ``seed`` makes the random draws repeatable; `force` scripts the next submissions of a
    reference or an account, so tests decide outcomes instead of hoping for them.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        latency_ms: float = 0.0,
        failure_rate: float = 0.0,
        timeout_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        for name, rate in (("failure_rate", failure_rate), ("timeout_rate", timeout_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        self.db = db
        self._clock = clock or SystemClock()
        self._latency = max(latency_ms, 0.0) / 1000
        self._failure_rate = failure_rate
        self._timeout_rate = timeout_rate
        # A simulator's dice, not a secret: a seeded PRNG keeps runs repeatable.
        self._rng = random.Random(seed)  # noqa: S311
        self._scripts: dict[str, deque[Behaviour]] = {}
        self.calls: deque[tuple[str, str]] = deque(maxlen=10_000)
        """The latest calls as (operation, reference): what a test checks was asked."""

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        clock: Clock | None = None,
        latency_ms: float = 0.0,
        failure_rate: float = 0.0,
        timeout_rate: float = 0.0,
        seed: int | None = None,
    ) -> SimulatedBank:
        """A bank on its own database at ``url``, its tables created if needed."""
        bank = cls(
            Database(url),
            clock=clock,
            latency_ms=latency_ms,
            failure_rate=failure_rate,
            timeout_rate=timeout_rate,
            seed=seed,
        )
        await bank.create_tables()
        return bank

    async def create_tables(self) -> None:
        """Create the bank's own tables (no effect when they exist)."""
        async with self.db.engine.begin() as conn:
            await conn.run_sync(bank_metadata.create_all)

    async def close(self) -> None:
        """Release the bank's database connections."""
        await self.db.dispose()

    def force(self, key: str, *behaviours: Behaviour) -> None:
        """Script the next submissions whose reference or account is ``key`` (the reference
        wins); once the script is used up, the random draws decide again.
        """
        self._scripts.setdefault(key, deque()).extend(behaviours)

    async def submit(self, instruction: BankInstruction) -> BankAnswer:
        """Apply an instruction once per reference (see `BankGateway.submit`)."""
        self.calls.append(("submit", instruction.reference))
        await self._wait()
        behaviour = self._behaviour(instruction)
        if behaviour is Behaviour.TIMEOUT_BEFORE:
            raise BankTimeout(f"no answer from the bank for {instruction.reference}")
        answer = await self._book(instruction, behaviour)
        if behaviour is Behaviour.TIMEOUT_AFTER:
            raise BankTimeout(f"the bank's answer for {instruction.reference} was lost")
        return answer

    async def status(self, reference: str) -> BankAnswer | None:
        """What the bank did with ``reference`` (see `BankGateway.status`)."""
        self.calls.append(("status", reference))
        await self._wait()
        if self._rng.random() < self._timeout_rate:
            raise BankTimeout(f"no answer from the bank about {reference}")
        row = await self.db.fetch_one(_answer_query(reference))
        return None if row is None else _answer(reference, row)

    async def statement(self) -> list[StatementLine]:
        """Applied movements, oldest first (see `BankGateway.statement`)."""
        self.calls.append(("statement", ""))
        await self._wait()
        m = bank_movements.c
        query = select(bank_movements).where(m.outcome == BankOutcome.APPLIED.value).order_by(m.booked_at, m.reference)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StatementLine(r.reference, r.bank_reference, Direction(r.direction), int(r.amount), r.currency, r.booked_at)
            for r in rows
        ]

    async def _wait(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)

    def _behaviour(self, instruction: BankInstruction) -> Behaviour:
        for key in (instruction.reference, instruction.bank_account):
            script = self._scripts.get(key)
            if script:
                return script.popleft()
        if self._rng.random() < self._timeout_rate:
            return Behaviour.TIMEOUT_AFTER if self._rng.random() < 0.5 else Behaviour.TIMEOUT_BEFORE
        return Behaviour.REJECT if self._rng.random() < self._failure_rate else Behaviour.APPLY

    async def _book(self, instruction: BankInstruction, behaviour: Behaviour) -> BankAnswer:
        if instruction.bank_account.endswith(CLOSED_ACCOUNT_SUFFIX):
            outcome, reason = BankOutcome.REJECTED, "ACCOUNT_CLOSED"
        elif behaviour is Behaviour.REJECT:
            outcome, reason = BankOutcome.REJECTED, "REJECTED_BY_BANK"
        else:
            outcome, reason = BankOutcome.APPLIED, ""
        row = {
            "reference": instruction.reference,
            "bank_reference": new_ulid("BNK"),
            "direction": instruction.direction.value,
            "account": instruction.bank_account,
            "amount": instruction.amount,
            "currency": instruction.currency,
            "outcome": outcome.value,
            "reason": reason,
            "booked_at": self._clock.now(),
        }

        def book(conn: Connection) -> BankAnswer | None:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            # A reference seen before keeps its first outcome: the bank never applies it twice.
            conn.execute(insert(bank_movements).on_conflict_do_nothing(index_elements=["reference"]), row)
            found = conn.execute(_answer_query(instruction.reference)).first()
            return None if found is None else _answer(instruction.reference, found)

        answer = await self.db.write_sync(book)
        assert answer is not None
        return answer


def _answer_query(reference: str) -> Select[Any]:
    m = bank_movements.c
    return select(m.outcome, m.bank_reference, m.reason).where(m.reference == reference)


def _answer(reference: str, row: Row[Any]) -> BankAnswer:
    return BankAnswer(reference, BankOutcome(row.outcome), row.bank_reference, row.reason)
