"""Contended locks are held briefly: in an idempotent call the balance updates and the
event run last; on PostgreSQL an existing account is never waited for while opening.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import DBAPIError

from libs.clock import FrozenClock
from libs.errors import FailedPrecondition
from libs.storage import Database, gather_late, late_steps
from services.payments.config import PaymentsConfig
from services.payments.container import PaymentsContainer, assemble
from services.payments.domain.accounts import AccountKind, user_account
from services.payments.domain.payments import Payment, PaymentStatus
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service.payments import _transition_all
from services.payments.store import accounts as accounts_repo
from services.payments.store import frozen as frozen_repo
from services.payments.store import ledger as ledger_repo
from services.payments.store import payments as payments_repo
from services.payments.tests.payments_helpers import BANK, grant, order, top_up

SVC = "svc-orders"
SALES = user_account("usr_seller", AccountKind.SALES, "JPY")


@pytest.fixture
async def c(db: Database, clock: FrozenClock) -> AsyncIterator[PaymentsContainer]:
    """The payments use cases; the ledger must verify after the test."""
    container = assemble(PaymentsConfig(database_url=db.url), db, clock)
    yield container
    assert (await container.ledger.verify()).consistent


@contextmanager
def recorded(db: Database) -> Iterator[list[str]]:
    """The statements sent while the block runs, whitespace folded."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def funded(c: PaymentsContainer, prefix: str, count: int, cash: int) -> list[str]:
    """``count`` buyers with ``cash`` each."""
    buyers = [f"usr_{prefix}{n}" for n in range(count)]
    for buyer in buyers:
        await top_up(c, buyer, cash)
    return buyers


async def pay_together(c: PaymentsContainer, buyers: list[str], prefix: str) -> list[object]:
    """A captured 300 JPY payment of each buyer, all at once; each result or error."""
    payments = (
        c.payments.create(SVC, order(f"{prefix}{n}", 300, buyer_id=b, capture=True)) for n, b in enumerate(buyers)
    )
    return await asyncio.gather(*payments, return_exceptions=True)


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
    with recorded(db) as statements:
        await c.payments.complete(SVC, "done", payment.payment_id)
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


@pytest.mark.parametrize("late", [False, True], ids=["transfer at once", "transfer late"])
async def test_a_balance_read_in_the_unit_sees_its_pending_moves(
    c: PaymentsContainer, db: Database, late: bool
) -> None:
    """On PostgreSQL a transfer's balance moves wait for the end of the unit; a read of
    balances inside it (a credit repayment's split) applies them first, and they are not
    applied twice at the end. A transfer gathered for the end of the unit is written
    before (it opens the seller's account, which the moves update).
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite moves each leg at once, nothing is pending")
    await top_up(c, "usr_buyer", 500)
    cash = user_account("usr_buyer", AccountKind.CASH, "JPY")

    def body(conn: Connection) -> dict[str, int]:
        with late_steps(conn):
            c.ledger.post(conn, TransferDraft("spend", (Leg(cash, -200), Leg(SALES, 200))), late=late)
            seen = accounts_repo.balances_of(conn, [cash.account_id, SALES.account_id], lock=True)
            c.ledger.post(conn, TransferDraft("spend", (Leg(cash, -100), Leg(SALES, 100))), late=late)
        return seen

    seen = await db.write_sync(body)
    assert seen == {cash.account_id: 300, SALES.account_id: 200}
    async with db.read() as conn:
        after = await conn.run_sync(lambda sync: accounts_repo.balances_of(sync, [cash.account_id, SALES.account_id]))
    assert after == {cash.account_id: 200, SALES.account_id: 300}


async def test_a_group_moves_every_call_s_balances_in_one_statement(c: PaymentsContainer, db: Database) -> None:
    """Calls committed together on PostgreSQL: one balance statement for the whole group,
    after the records and before the events; each call's money still lands.
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite moves one leg per statement")
    await top_up(c, "usr_buyer", 1_000)
    cash = user_account("usr_buyer", AccountKind.CASH, "JPY")

    def pay(amount: int) -> Callable[[Connection], str]:
        def effect(conn: Connection) -> str:
            return c.ledger.post(conn, TransferDraft("sale", (Leg(cash, -amount), Leg(SALES, amount)))).transfer_id

        return effect

    with recorded(db) as statements:
        await asyncio.gather(*(c.calls.run_once("svc:Pay", f"p{n}", f"h{n}", pay(100)) for n in range(5)))
    moves = [s for s in statements if s.startswith("WITH moves")]
    assert len(moves) < 5, statements
    assert len(moves) == sum(s.startswith("INSERT INTO idempotency_keys") for s in statements)
    writes = [s for s in statements if not s.startswith("SELECT")]
    # In each transaction: the records, then the balances, then (nothing here) events.
    for n, statement in enumerate(writes):
        if statement.startswith("WITH moves"):
            assert writes[n - 1].startswith("INSERT INTO idempotency_keys"), writes
    async with db.read() as conn:
        after = await conn.run_sync(lambda sync: accounts_repo.balances_of(sync, [cash.account_id, SALES.account_id]))
    assert after == {cash.account_id: 500, SALES.account_id: 500}


async def test_a_group_writes_its_new_payments_and_transfers_in_one_statement_each(
    c: PaymentsContainer, db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creates committed together on PostgreSQL: the group's payments with their funding
    lines, their points lots and their transfers (with the entries and new accounts) are
    each written by one statement, before the balance moves; every payment is there.
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite writes each row at once (no round trips to save)")
    buyers = await funded(c, "b", 6, 5_000)
    await grant(c, clock, buyers[0], 100, "points-b0")
    # Transactions wait at a gate until every payment has queued: then they share groups
    # whatever order their reads before the transaction finish in.
    gate = asyncio.Event()
    write_sync = db.write_sync

    async def gated(fn: Callable[[Connection], object]) -> object:
        await gate.wait()
        return await write_sync(fn)

    monkeypatch.setattr(db, "write_sync", gated)
    with recorded(db) as statements:
        paying = asyncio.ensure_future(pay_together(c, buyers, "k"))
        async with asyncio.timeout(5):
            while c.calls.in_flight() < len(buyers):  # noqa: ASYNC110 — no event to wait on
                await asyncio.sleep(0.001)
        gate.set()
        created = await paying
    groups = sum(s.startswith("INSERT INTO idempotency_keys") for s in statements)
    assert groups < len(buyers), statements
    # The payments with their funding lines (one statement), their points lots, their transfers.
    for table in ("WITH new_payments AS (INSERT INTO payments ", "INSERT INTO payment_points", "WITH legs"):
        assert 0 < sum(s.startswith(table) for s in statements) <= groups, (table, statements)
    assert not any(s.startswith(("INSERT INTO payments", "INSERT INTO payment_funding")) for s in statements)
    writes = [s for s in statements if not s.startswith("SELECT")]
    first_move = next(n for n, s in enumerate(writes) if s.startswith("WITH moves"))
    assert any(s.startswith("WITH legs") for s in writes[:first_move]), writes
    for payment in created:
        assert isinstance(payment, Payment), created
        stored = await c.payments.get(payment.payment_id)
        assert stored == payment
    first = created[0]
    assert isinstance(first, Payment)
    assert first.funding[0].amount == 100  # the points came first


def cash_of(user: str) -> str:
    return user_account(user, AccountKind.CASH, "JPY").account_id


def spends(buyer: str, amount: int = 100) -> TransferDraft:
    return TransferDraft("spend", (Leg(user_account(buyer, AccountKind.CASH, "JPY"), -amount), Leg(SALES, amount)))


async def test_a_frozen_buyer_in_a_group_is_refused_alone_and_the_others_pay(
    c: PaymentsContainer, db: Database, clock: FrozenClock
) -> None:
    """On PostgreSQL a group's payers are checked for frozen wallets at its end: a frozen
    one fails the group, which runs again call by call, so only that buyer is refused
    (WALLET_FROZEN) and nothing of theirs is kept.
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite checks each payer at once")
    buyers = await funded(c, "f", 5, 1_000)
    async with db.transaction() as tx:
        await frozen_repo.freeze(tx.conn, buyers[2], "suspended", clock.now())
    results = await pay_together(c, buyers, "f")
    refused = results[2]
    assert isinstance(refused, FailedPrecondition)
    assert refused.reason == "WALLET_FROZEN"
    assert refused.metadata == {"user_id": buyers[2]}
    assert all(not isinstance(r, BaseException) for n, r in enumerate(results) if n != 2), results
    async with db.read() as conn:
        balances = await conn.run_sync(lambda sync: accounts_repo.balances_of(sync, [cash_of(b) for b in buyers]))
    assert [balances[cash_of(b)] for b in buyers] == [700, 700, 1_000, 700, 700]


async def test_a_unit_checks_its_payers_for_frozen_wallets_in_one_read(
    c: PaymentsContainer, db: Database, clock: FrozenClock
) -> None:
    """Transfers posted late in one unit: their payers are checked together, by one read
    at the unit's end; a frozen one refuses the unit and nothing of it is kept.
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite checks each payer at once")
    buyers = await funded(c, "u", 3, 1_000)
    async with db.transaction() as tx:
        await frozen_repo.freeze(tx.conn, buyers[1], "suspended", clock.now())

    def body(conn: Connection) -> None:
        with late_steps(conn):
            for buyer in buyers:
                c.ledger.post(conn, spends(buyer), late=True)

    with recorded(db) as statements, pytest.raises(FailedPrecondition) as refused:
        await db.write_sync(body)
    assert refused.value.reason == "WALLET_FROZEN"
    assert refused.value.metadata == {"user_id": buyers[1]}
    checks = [s for s in statements if "frozen_wallets" in s]
    assert len(checks) == 1, statements
    assert "= ANY(" in checks[0]
    async with db.read() as conn:
        balances = await conn.run_sync(lambda sync: accounts_repo.balances_of(sync, [cash_of(b) for b in buyers]))
    assert [balances[cash_of(b)] for b in buyers] == [1_000, 1_000, 1_000]


async def test_after_a_refusal_a_frozen_buyer_undoes_only_its_own_savepoint(
    c: PaymentsContainer, db: Database, clock: FrozenClock
) -> None:
    """In the careful groups that follow a refusal, each call settles its frozen check
    inside its savepoint: the frozen buyer's call rolls back alone and the group still
    commits the others together (their records in shared statements, not one each).
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite checks each payer at once")
    buyers = await funded(c, "g", 5, 1_000)
    async with db.transaction() as tx:
        await frozen_repo.freeze(tx.conn, buyers[2], "suspended", clock.now())

    def pay(buyer: str) -> Callable[[Connection], str]:
        return lambda conn: c.ledger.post(conn, spends(buyer), late=True).transfer_id

    with pytest.raises(FailedPrecondition):  # refused in its transaction: the next groups are careful
        await c.calls.run_once("svc:Pay", "first", "h-first", pay(buyers[2]))
    # Submitted in one turn of the loop (no await before the queue on PostgreSQL): one group.
    with recorded(db) as statements:
        results = await asyncio.gather(
            *(c.calls.run_once("svc:Pay", f"g{n}", f"h{n}", pay(b)) for n, b in enumerate(buyers)),
            return_exceptions=True,
        )
    refused = results[2]
    assert isinstance(refused, FailedPrecondition)
    assert refused.reason == "WALLET_FROZEN"
    assert all(not isinstance(r, BaseException) for n, r in enumerate(results) if n != 2), results
    records = sum(s.startswith("INSERT INTO idempotency_keys") for s in statements)
    assert records < 4, statements  # not every call alone


async def test_a_group_reads_and_locks_its_payments_ahead_and_moves_them_in_one_statement(
    c: PaymentsContainer, db: Database
) -> None:
    """Completions committed together on PostgreSQL: their payments are read and locked in
    one statement, in id order, before the calls run, and their status changes are
    written by one statement at the end, instead of a read and an update each.
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite reads and updates each payment at once")
    buyers = await funded(c, "r", 4, 1_000)
    created = [
        await c.payments.create(SVC, order(f"r{n}", 300, buyer_id=buyer, capture=True))
        for n, buyer in enumerate(buyers)
    ]
    ids = [p.payment_id for p in created]
    with recorded(db) as statements:
        # Submitted in one turn of the loop: the calls queue before their group is taken.
        completed = await asyncio.gather(*(c.payments.complete(SVC, f"done-{n}", i) for n, i in enumerate(ids)))
    assert [p.status for p in completed] == [PaymentStatus.COMPLETED] * len(ids)
    reads = [s for s in statements if s.startswith("SELECT payments.id")]
    assert len(reads) == 1, statements
    assert "= any(" in reads[0], reads
    assert reads[0].endswith("FOR UPDATE OF payments"), reads
    assert "ORDER BY payments.id" in reads[0], reads
    updates = [s for s in statements if s.startswith("UPDATE payments")]
    assert len(updates) == 1, updates
    assert "unnest(" in updates[0], updates
    stored = [await c.payments.get(i) for i in ids]
    assert [(p.status, p.fee) for p in stored] == [(PaymentStatus.COMPLETED, p.fee) for p in completed]
    assert all(p.fee > 0 for p in completed)


async def test_two_refunds_of_one_payment_in_one_group_each_see_the_other(c: PaymentsContainer, db: Database) -> None:
    """Two refunds of one payment committed together: the second reads the payment after
    the first's change (its pending status change is written first), so together they
    refund exactly what each asked and never more than was captured.
    """
    await top_up(c, "usr_buyer", 5_000)
    payment = await c.payments.create(SVC, order("twice", 1_000, capture=True))
    with recorded(db) as statements:
        refunds = await asyncio.gather(
            c.payments.refund(SVC, "r-300", payment.payment_id, 300, "JPY", "damaged"),
            c.payments.refund(SVC, "r-700", payment.payment_id, 700, "JPY", "missing"),
        )
    assert [refund.amount for _, refund in refunds] == [300, 700]
    if db.dialect == "postgresql":
        groups = [s for s in statements if "pg_try_advisory_xact_lock" in s]
        assert len(groups) == 1, statements  # one group: its keys locked in one statement
    with pytest.raises(FailedPrecondition):
        await c.payments.refund(SVC, "r-1", payment.payment_id, 1, "JPY", "one too many")
    stored = await c.payments.get(payment.payment_id)
    assert (stored.status, stored.refunded, len(stored.refunds)) == (PaymentStatus.REFUNDED, 1_000, 2)
    async with db.read() as conn:
        balances = await conn.run_sync(lambda sync: accounts_repo.balances_of(sync, [cash_of("usr_buyer")]))
    assert balances == {cash_of("usr_buyer"): 5_000}


async def test_a_pending_status_change_is_refused_when_the_payment_moved_meanwhile(
    c: PaymentsContainer, db: Database
) -> None:
    """The gathered status changes keep their guard: when a payment is no longer in the
    status a change expects, the unit fails with CONCURRENT_UPDATE and nothing of it stays.
    """
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite updates each payment at once")
    await top_up(c, "usr_buyer", 5_000)
    payment = await c.payments.create(SVC, order("moved", 1_000, capture=True))

    def stale(conn: Connection) -> None:
        with late_steps(conn):
            changes = {"updated_at": datetime.now(UTC)}
            change = (payment.payment_id, PaymentStatus.AUTHORIZED, PaymentStatus.CANCELED, changes)
            gather_late(conn, payments_repo.PENDING_TRANSITIONS, change, _transition_all)

    with pytest.raises(FailedPrecondition) as refused:
        await db.write_sync(stale)
    assert refused.value.reason == "CONCURRENT_UPDATE"
    assert (await c.payments.get(payment.payment_id)).status is PaymentStatus.CAPTURED
