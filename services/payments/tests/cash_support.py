"""Helpers shared by the cash tests: a simulated bank on its own SQLite file, the flows on
the payments test database, and ways to put money where a test needs it.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.sql import FromClause

from libs.clock import Clock
from libs.storage import Database
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.bank import CashRequest
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service.bank_gateway import BankGateway, SimulatedBank
from services.payments.service.cash import CashFlows
from services.payments.store import frozen as frozen_repo
from services.payments.store.tables import accounts

PAYOUT_FEE = 200
ACCOUNT = "0001-001-1234567"
CLOSED = "0001-001-9999999"


async def open_bank(tmp_path: Path, clock: Clock, name: str = "bank") -> SimulatedBank:
    """A simulated bank with no latency, no random failures, a fixed seed."""
    return await SimulatedBank.open(f"sqlite+aiosqlite:///{tmp_path}/{name}.db", clock=clock, seed=7)


def cash_flows(payments: PaymentsContainer, bank: BankGateway, db: Database | None = None) -> CashFlows:
    """Cash flows on the test container (``db``: another handle on the same database, as a
    second process would have).
    """
    return CashFlows(
        db or payments.db, payments.ledger, payments.calls, payments.outbox, payments.clock, bank, PAYOUT_FEE
    )


def cash_request(key: str = "k1", amount: int = 5000, user_id: str = "usr_a", account: str = ACCOUNT) -> CashRequest:
    """A well-formed top-up or withdrawal request."""
    return CashRequest(key, user_id, amount, "JPY", account)


async def fund_sales(payments: PaymentsContainer, user_id: str, amount: int) -> None:
    """Give a user sales proceeds (as a completed sale would, from escrow)."""
    escrow = platform_account(AccountKind.ESCROW, "JPY", shard=0)
    sales = user_account(user_id, AccountKind.SALES, "JPY")
    await payments.ledger.transfer(TransferDraft("test_sale", (Leg(escrow, -amount), Leg(sales, amount))))


async def use_credit(payments: PaymentsContainer, user_id: str, amount: int, limit: int = 10_000) -> None:
    """Let a user spend ``amount`` on a credit line of ``limit`` (its balance goes negative)."""
    credit = user_account(user_id, AccountKind.CREDIT, "JPY", credit_limit=limit)
    escrow = platform_account(AccountKind.ESCROW, "JPY", shard=0)
    await payments.ledger.transfer(TransferDraft("test_credit_purchase", (Leg(credit, -amount), Leg(escrow, amount))))


async def freeze(payments: PaymentsContainer, user_id: str) -> None:
    """Freeze a user's wallet, as a TnS suspension does."""
    async with payments.db.transaction() as tx:
        await frozen_repo.freeze(tx.conn, user_id, "suspended", payments.clock.now())


async def balance(db: Database, account_id: str) -> int:
    """An account's balance (0 when it was never opened)."""
    row = await db.fetch_one(select(accounts.c.balance).where(accounts.c.id == account_id))
    return 0 if row is None else int(row.balance)


async def kind_balance(db: Database, kind: AccountKind) -> int:
    """The sum of every account of a kind (all shards of a platform book)."""
    row = await db.fetch_one(
        select(func.coalesce(func.sum(accounts.c.balance), 0)).where(accounts.c.kind == kind.value)
    )
    assert row is not None
    return int(row[0])


async def count(db: Database, table: FromClause, *where: object) -> int:
    """Rows of a table matching the conditions."""
    query = select(func.count()).select_from(table)
    for condition in where:
        query = query.where(condition)  # type: ignore[arg-type]
    async with db.read() as conn:
        return int(await conn.scalar(query) or 0)
