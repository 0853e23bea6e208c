"""Reconciliation of the ledger's bank clearing with the bank's statement: the matching
rules on their own, then against real flows with mismatches injected by SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update

from libs.clock import FrozenClock
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.bank import BankTransferStatus, Direction, StatementLine
from services.payments.domain.reconciliation import ClearingMovement, FlowRecord, MismatchKind, reconcile
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service.bank_gateway import Behaviour, SimulatedBank, bank_movements
from services.payments.service.cash import CashFlows
from services.payments.service.reconciliation import Reconciler
from services.payments.tests.cash_support import CLOSED, cash_flows, cash_request, fund_sales, open_bank

AT = datetime(2026, 3, 1, tzinfo=UTC)
DONE, PENDING = BankTransferStatus.COMPLETED, BankTransferStatus.PENDING


def line(reference: str, amount: int, direction: Direction = Direction.COLLECT) -> StatementLine:
    """A statement line of the bank."""
    return StatementLine(reference, f"BNK-{reference}", direction, amount, "JPY", AT)


# --- the matching rules -----------------------------------------------------------------


def test_completed_flows_on_both_sides_match() -> None:
    """A top-up (clearing -5000) and a payout (clearing +2800) match the bank's +5000 and -2800."""
    flows = [FlowRecord("btr_1", DONE, "BNK-btr_1", "trf_1"), FlowRecord("btr_2", DONE, "BNK-btr_2", "trf_2")]
    movements = [ClearingMovement("trf_1", None, "JPY", -5000), ClearingMovement("trf_2", None, "JPY", 2800)]
    report = reconcile(flows, movements, [line("btr_1", 5000), line("btr_2", 2800, Direction.PAY)])
    assert (report.consistent, report.matched, report.in_flight) == (True, 2, 0)


def test_each_kind_of_mismatch_is_reported() -> None:
    """Bank-only → MISSING_IN_LEDGER, ledger-only → MISSING_AT_BANK, different amounts → AMOUNT_DIFFERS."""
    flows = [
        FlowRecord("btr_1", DONE, "BNK-btr_1", "trf_1"),
        FlowRecord("btr_2", DONE, "BNK-btr_2", "trf_2"),
        FlowRecord("btr_3", BankTransferStatus.REVERTED, None, None),
    ]
    movements = [
        ClearingMovement("trf_1", None, "JPY", -5000),
        ClearingMovement("trf_2", None, "JPY", -700),
        ClearingMovement("trf_stray", None, "JPY", -300),
    ]
    statement = [line("btr_1", 4000), line("btr_3", 900), line("btr_ghost", 100)]
    report = reconcile(flows, movements, statement)
    found = {(m.kind, m.bank_transfer_id, m.ledger_amount, m.bank_amount) for m in report.mismatches}
    assert found == {
        (MismatchKind.AMOUNT_DIFFERS, "btr_1", 5000, 4000),
        (MismatchKind.MISSING_AT_BANK, "btr_2", 700, 0),
        (MismatchKind.MISSING_IN_LEDGER, "btr_3", 0, 900),
        (MismatchKind.MISSING_IN_LEDGER, "btr_ghost", 0, 100),
        (MismatchKind.MISSING_AT_BANK, "", 300, 0),
    }
    assert not report.consistent
    assert report.matched == 0
    stray = next(m for m in report.mismatches if m.bank_transfer_id == "")
    assert stray.ledger_transfer_id == "trf_stray"


def test_flows_in_flight_are_counted_not_mismatched() -> None:
    """A PENDING flow already on the bank's statement, and one not there yet: two in flight, consistent."""
    flows = [FlowRecord("btr_1", PENDING, None, None), FlowRecord("btr_2", BankTransferStatus.CONFIRMED, "B", None)]
    report = reconcile(flows, [], [line("btr_2", 5000)])
    assert (report.consistent, report.in_flight, report.matched) == (True, 2, 0)


def test_a_reversal_counts_towards_its_flow() -> None:
    """A completed top-up whose posting was reversed nets to 0 in the ledger: AMOUNT_DIFFERS with the bank."""
    flows = [FlowRecord("btr_1", DONE, "BNK-btr_1", "trf_1")]
    movements = [ClearingMovement("trf_1", None, "JPY", -5000), ClearingMovement("trf_r", "trf_1", "JPY", 5000)]
    [mismatch] = reconcile(flows, movements, [line("btr_1", 5000)]).mismatches
    assert (mismatch.kind, mismatch.ledger_amount, mismatch.bank_amount) == (MismatchKind.AMOUNT_DIFFERS, 0, 5000)


# --- against real flows -----------------------------------------------------------------


@pytest.fixture
async def bank(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[SimulatedBank]:
    """Provide the simulated bank, on its own database."""
    sim = await open_bank(tmp_path, clock)
    yield sim
    await sim.close()


@pytest.fixture
async def flows(payments: PaymentsContainer, bank: SimulatedBank) -> CashFlows:
    """Provide a top-up, a withdrawal, a rejected withdrawal and a flow whose answer was lost."""
    cash = cash_flows(payments, bank)
    await fund_sales(payments, "usr_a", 10_000)
    await cash.top_up("svc-app", cash_request("t1", 5000))
    await cash.withdraw("svc-app", cash_request("w1", 3000))
    await cash.withdraw("svc-app", cash_request("w2", 1000, account=CLOSED))
    bank.force("0001-001-7777777", Behaviour.TIMEOUT_AFTER)
    await cash.top_up("svc-app", cash_request("t2", 800, account="0001-001-7777777"))
    return cash


async def test_clean_after_flows_with_one_in_flight(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """Top-up and payout match; the rejected one is nowhere; the lost answer is in flight until the runner ends it."""
    reconciler = Reconciler(payments.db, bank)
    report = await reconciler.reconcile()
    assert (report.consistent, report.matched, report.in_flight) == (True, 2, 1)
    clock.advance(1)
    await flows.run_due()
    report = await reconciler.reconcile()
    assert (report.consistent, report.matched, report.in_flight) == (True, 3, 0)
    assert (await payments.ledger.verify()).consistent


async def test_injected_mismatches_are_each_reported(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """A stray bank line, a stray clearing posting, a changed bank amount and a deleted bank line: four mismatches."""
    clock.advance(1)
    await flows.run_due()
    by_amount = {m.platform_amount: m.reference for m in await bank.statement()}
    top_up, withdrawal = by_amount[5000], by_amount[-2800]
    async with bank.db.transaction() as tx:
        await tx.conn.execute(
            insert(bank_movements).values(
                reference="btr_ghost",
                bank_reference="BNK-ghost",
                direction="COLLECT",
                account="0001-001-1111111",
                amount=1234,
                currency="JPY",
                outcome="APPLIED",
                reason="",
                booked_at=AT,
            )
        )
        await tx.conn.execute(update(bank_movements).where(bank_movements.c.reference == top_up).values(amount=4999))
        await tx.conn.execute(delete(bank_movements).where(bank_movements.c.reference == withdrawal))
    clearing = platform_account(AccountKind.BANK_CLEARING, "JPY")
    cash = user_account("usr_b", AccountKind.CASH, "JPY")
    stray = await payments.ledger.transfer(TransferDraft("manual", (Leg(clearing, -700), Leg(cash, 700))))
    report = await Reconciler(payments.db, bank).reconcile()
    found = {
        (m.kind, m.bank_transfer_id, m.ledger_transfer_id, m.ledger_amount, m.bank_amount) for m in report.mismatches
    }
    flow_top_up, flow_withdrawal = await flows.get(top_up), await flows.get(withdrawal)
    assert found == {
        (MismatchKind.MISSING_IN_LEDGER, "btr_ghost", "", 0, 1234),
        (MismatchKind.MISSING_AT_BANK, "", stray.transfer_id, 700, 0),
        (MismatchKind.AMOUNT_DIFFERS, top_up, flow_top_up.ledger_transfer_id, 5000, 4999),
        (MismatchKind.MISSING_AT_BANK, withdrawal, flow_withdrawal.ledger_transfer_id, -2800, 0),
    }
    assert (report.consistent, report.matched, report.in_flight) == (False, 1, 0)
