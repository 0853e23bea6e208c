"""The ledger on a real database: balanced posting, floors under concurrency, reversals, verification."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from libs.errors import FailedPrecondition, InvalidArgument, NotFound
from libs.storage import Database
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.transfers import InsufficientFunds, Leg, TransferDraft
from services.payments.service.ledger import PostedTransfer
from services.payments.store.tables import entries, transfers

BANK = platform_account(AccountKind.BANK_CLEARING, "JPY")
ESCROW = platform_account(AccountKind.ESCROW, "JPY", shard=0)
CASH = user_account("usr_a", AccountKind.CASH, "JPY")


async def top_up(payments: PaymentsContainer, amount: int) -> PostedTransfer:
    """Move ``amount`` from bank clearing into usr_a's cash."""
    return await payments.ledger.transfer(TransferDraft("top_up", (Leg(BANK, -amount), Leg(CASH, amount))))


async def balances(db: Database) -> dict[str, int]:
    """Every account's stored balance."""
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT id, balance FROM accounts"))).all()
    return {r[0]: int(r[1]) for r in rows}


async def count(db: Database, table: object) -> int:
    """Rows in a table."""
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_balanced_transfer_writes_entries_and_balances(payments: PaymentsContainer, db: Database) -> None:
    """A top-up opens both accounts, writes two entries and moves both balances."""
    await top_up(payments, 5000)
    assert await balances(db) == {BANK.account_id: -5000, CASH.account_id: 5000}
    assert await count(db, entries) == 2


async def test_unbalanced_transfer_writes_nothing(payments: PaymentsContainer, db: Database) -> None:
    """A transfer that does not sum to zero is INVALID_ARGUMENT and leaves no trace."""
    with pytest.raises(InvalidArgument) as caught:
        await payments.ledger.transfer(TransferDraft("bad", (Leg(BANK, -100), Leg(CASH, 99))))
    assert caught.value.reason == "UNBALANCED_TRANSFER"
    assert (await count(db, transfers), await balances(db)) == (0, {})


async def test_overdraft_rolls_back_every_leg(payments: PaymentsContainer, db: Database) -> None:
    """A debit past the floor is INSUFFICIENT_FUNDS and the legs already applied are undone."""
    await top_up(payments, 100)
    # Escrow sorts before usr_a, so its credit is applied before the cash debit fails.
    with pytest.raises(InsufficientFunds):
        await payments.ledger.transfer(TransferDraft("pay", (Leg(CASH, -101), Leg(ESCROW, 101))))
    # Even the escrow account the failed transfer opened is gone with it.
    assert await balances(db) == {BANK.account_id: -100, CASH.account_id: 100}
    assert await count(db, transfers) == 1


async def test_twenty_concurrent_debits_never_overdraw(payments: PaymentsContainer, db: Database) -> None:
    """20 concurrent ¥700 debits of ¥5,000: exactly 7 succeed, the balance ends at ¥100, never below zero."""
    await top_up(payments, 5000)
    debit = TransferDraft("pay", (Leg(CASH, -700), Leg(ESCROW, 700)))
    results = await asyncio.gather(*(payments.ledger.transfer(debit) for _ in range(20)), return_exceptions=True)
    assert sum(isinstance(r, PostedTransfer) for r in results) == 7
    assert all(isinstance(r, PostedTransfer | InsufficientFunds) for r in results)
    assert (await balances(db))[CASH.account_id] == 100
    assert (await payments.ledger.verify()).consistent


async def test_credit_goes_negative_only_to_its_limit(payments: PaymentsContainer, db: Database) -> None:
    """A credit account may be drawn to minus its limit and not a yen further."""
    credit = user_account("usr_a", AccountKind.CREDIT, "JPY", credit_limit=1000)
    receivable = platform_account(AccountKind.CREDIT_RECEIVABLE, "JPY")
    await payments.ledger.transfer(TransferDraft("credit_use", (Leg(credit, -1000), Leg(receivable, 1000))))
    with pytest.raises(InsufficientFunds):
        await payments.ledger.transfer(TransferDraft("credit_use", (Leg(credit, -1), Leg(receivable, 1))))
    assert (await balances(db))[credit.account_id] == -1000


async def test_reversal_restores_balances_once(payments: PaymentsContainer, db: Database) -> None:
    """Reversing a transfer posts the opposite entries; a second reversal is ALREADY_REVERSED."""
    posted = await top_up(payments, 800)
    await payments.ledger.reverse(posted.transfer_id)
    assert await balances(db) == {BANK.account_id: 0, CASH.account_id: 0}
    assert await count(db, entries) == 4
    with pytest.raises(FailedPrecondition) as caught:
        await payments.ledger.reverse(posted.transfer_id)
    assert caught.value.reason == "ALREADY_REVERSED"
    with pytest.raises(NotFound):
        await payments.ledger.reverse("trf_missing")


async def test_reversal_respects_floors(payments: PaymentsContainer, db: Database) -> None:
    """A top-up already spent cannot be reversed into a negative balance."""
    posted = await top_up(payments, 800)
    await payments.ledger.transfer(TransferDraft("pay", (Leg(CASH, -500), Leg(ESCROW, 500))))
    with pytest.raises(InsufficientFunds):
        await payments.ledger.reverse(posted.transfer_id)
    assert (await balances(db))[CASH.account_id] == 300


async def test_entries_are_append_only(payments: PaymentsContainer, db: Database) -> None:
    """The database itself refuses to edit or delete a ledger entry."""
    await top_up(payments, 100)
    for statement in ("UPDATE entries SET amount = 0", "DELETE FROM entries", "DELETE FROM transfers"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as tx:
                await tx.conn.execute(text(statement))


async def test_verify_reports_zero_sums_on_a_sound_ledger(payments: PaymentsContainer) -> None:
    """After top-ups, payments and a reversal the ledger is consistent and JPY sums to zero."""
    await top_up(payments, 900)
    await payments.ledger.transfer(TransferDraft("pay", (Leg(CASH, -400), Leg(ESCROW, 400))))
    await payments.ledger.transfer(TransferDraft("refund", (Leg(ESCROW, -100), Leg(CASH, 100))))
    mistaken = await top_up(payments, 300)
    await payments.ledger.reverse(mistaken.transfer_id, "mistaken top-up")
    found = await payments.ledger.verify()
    assert found.consistent
    assert found.currency_sums == (("JPY", 0),)
    assert (found.accounts_checked, found.entries_checked) == (3, 10)


async def test_verify_finds_injected_discrepancies(payments: PaymentsContainer, db: Database) -> None:
    """A balance edited behind the ledger's back and a stray entry are both reported."""
    posted = await top_up(payments, 900)
    async with db.transaction() as tx:
        await tx.conn.execute(text("UPDATE accounts SET balance = balance + 1 WHERE id = :id"), {"id": CASH.account_id})
        await tx.conn.execute(
            text(
                "INSERT INTO entries (transfer_id, account_id, amount, currency, created_at) "
                "VALUES (:t, :a, 7, 'JPY', CURRENT_TIMESTAMP)"
            ),
            {"t": posted.transfer_id, "a": BANK.account_id},
        )
    found = await payments.ledger.verify()
    assert not found.consistent
    assert [(d.account_id, d.stored, d.computed) for d in found.discrepancies] == [
        (BANK.account_id, -900, -893),
        (CASH.account_id, 901, 900),
    ]
    assert found.unbalanced_transfers == ((posted.transfer_id, "JPY", 7),)
    assert found.currency_sums == (("JPY", 7),)


async def test_random_concurrent_transfers_keep_the_ledger_sound(payments: PaymentsContainer, db: Database) -> None:
    """200 random transfers, 20 at a time, among floored and unfloored accounts: the ledger stays
    consistent, JPY sums to zero, and no account ends below its floor.
    """
    rng = random.Random(20261130)
    users = [user_account(f"usr_{n}", AccountKind.CASH, "JPY") for n in range(4)]
    credit = user_account("usr_0", AccountKind.CREDIT, "JPY", credit_limit=2000)
    pool = [*users, credit, BANK, ESCROW]
    for user in users:
        await payments.ledger.transfer(TransferDraft("top_up", (Leg(BANK, -3000), Leg(user, 3000))))
    outcomes: list[object] = []
    for _ in range(10):
        batch = []
        for _ in range(20):
            source, target = rng.sample(pool, 2)
            amount = rng.randint(1, 2500)
            batch.append(payments.ledger.transfer(TransferDraft("move", (Leg(source, -amount), Leg(target, amount)))))
        outcomes += await asyncio.gather(*batch, return_exceptions=True)
    assert all(isinstance(o, PostedTransfer | InsufficientFunds) for o in outcomes)
    assert any(isinstance(o, InsufficientFunds) for o in outcomes)
    found = await payments.ledger.verify()
    assert (found.consistent, found.currency_sums) == (True, (("JPY", 0),))
    stored = await balances(db)
    assert all(stored.get(a.account_id, 0) >= a.floor for a in pool if a.floor is not None)
