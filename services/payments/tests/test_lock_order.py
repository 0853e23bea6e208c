"""Contended locks are held briefly: in an idempotent call the balance updates and the
event run last; on PostgreSQL an existing account is never waited for while opening.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from libs.clock import FrozenClock
from libs.storage import Database
from services.payments.config import PaymentsConfig
from services.payments.container import PaymentsContainer, assemble
from services.payments.domain.accounts import AccountKind, user_account
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.store import accounts as accounts_repo
from services.payments.store import ledger as ledger_repo
from services.payments.tests.payments_helpers import BANK, order, top_up

SVC = "svc-orders"
SALES = user_account("usr_seller", AccountKind.SALES, "JPY")


@pytest.fixture
async def c(db: Database, clock: FrozenClock) -> AsyncIterator[PaymentsContainer]:
    """The payments use cases; the ledger must verify after the test."""
    container = assemble(PaymentsConfig(database_url=db.url), db, clock)
    yield container
    assert (await container.ledger.verify()).consistent


async def test_a_completion_moves_balances_then_appends_its_event_last(c: PaymentsContainer, db: Database) -> None:
    """CompletePayment's last statements on PostgreSQL: the one balance update of every leg
    (the hot seller's row is locked there, not earlier), then the outbox insert (the lock
    every writer takes) — each held for that statement and the commit only.
    """
    if db.dialect != "postgresql":
        # SQLite has one writer at a time and no row locks to hold briefly (its inline
        # writer is another engine, whose statements this listener would not see).
        pytest.skip("PostgreSQL only: the order matters where rows are locked")
    await top_up(c, "usr_buyer", 5_000)
    payment = await c.payments.create(SVC, order("p1", 1_000, capture=True))
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await c.payments.complete(SVC, "done", payment.payment_id)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    writes = [s for s in statements if not s.startswith("SELECT")]
    assert writes[-1].startswith("INSERT INTO outbox"), writes
    assert "UPDATE accounts" in writes[-2], writes
    assert not any("UPDATE accounts" in s for s in writes[:-2]), writes


async def test_opening_an_existing_account_does_not_wait_for_its_row_lock(c: PaymentsContainer, db: Database) -> None:
    """While another transaction holds the seller's proceeds row (it is moving its balance),
    writing a transfer to it — opening its accounts, the transfer and entries — does not
    wait; only the balance update does, late, at the end of the transaction.
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no row locks")
    await c.ledger.transfer(TransferDraft("seed", (Leg(BANK, -100), Leg(SALES, 100))))
    draft = TransferDraft("sale", (Leg(BANK, -50), Leg(SALES, 50)))
    now = datetime(2026, 11, 30, tzinfo=UTC)
    async with db.engine.connect() as holder, db.engine.connect() as writer:
        await holder.begin()
        await holder.execute(text("UPDATE accounts SET balance = balance WHERE id = :id"), {"id": SALES.account_id})
        await writer.begin()
        await writer.execute(text("SET LOCAL lock_timeout = '300ms'"))
        await writer.run_sync(lambda conn: ledger_repo.open_and_insert_transfer(conn, "trf_late", draft, now))
        with pytest.raises(DBAPIError, match="lock timeout"):
            await writer.run_sync(lambda conn: accounts_repo.add_to_balances(conn, [(SALES.account_id, 50)]))
        await writer.rollback()
        await holder.rollback()


async def test_one_statement_moves_every_leg_or_reports_the_refused_ones(c: PaymentsContainer, db: Database) -> None:
    """add_to_balances moves the legs within their floors and leaves out a leg that would
    cross its floor (the ledger then refuses the whole transfer and rolls it back).
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite moves one leg per statement")
    await top_up(c, "usr_buyer", 100)
    cash = user_account("usr_buyer", AccountKind.CASH, "JPY")
    async with db.engine.connect() as conn, conn.begin():
        moved = await conn.run_sync(
            lambda sync: accounts_repo.add_to_balances(sync, [(cash.account_id, -150), (BANK.account_id, 150)])
        )
        assert moved == {BANK.account_id}
        await conn.rollback()
    async with db.engine.connect() as conn, conn.begin():
        moved = await conn.run_sync(
            lambda sync: accounts_repo.add_to_balances(sync, [(cash.account_id, -100), (BANK.account_id, 100)])
        )
        assert moved == {cash.account_id, BANK.account_id}
        await conn.rollback()  # balances without their entries: never kept
