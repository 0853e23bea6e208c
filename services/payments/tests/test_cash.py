"""Cash in and out: the sagas end to end on a real database and the simulated bank."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from furima.payments.v1 import events_pb2
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from libs.clock import FrozenClock
from libs.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from libs.storage import Database
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind, account_id
from services.payments.domain.bank import (
    BANK_TOP_UP,
    WITHDRAWAL_HOLD,
    WITHDRAWAL_PAYOUT,
    WITHDRAWAL_RELEASE,
    BankTransfer,
    BankTransferKind,
    BankTransferStatus,
    check_transition,
    completion_draft,
    instruction_for,
    new_flow,
    release_draft,
    repayment_split,
    retry_delay,
)
from services.payments.domain.transfers import validate_transfer
from services.payments.service.bank_gateway import Behaviour, SimulatedBank
from services.payments.service.cash import CashFlows
from services.payments.store.tables import bank_transfers, idempotency_keys, outbox, transfers
from services.payments.tests.cash_support import (
    CLOSED,
    PAYOUT_FEE,
    balance,
    cash_flows,
    cash_request,
    count,
    freeze,
    fund_sales,
    kind_balance,
    open_bank,
    use_credit,
)
from services.payments.tests.conftest import START

PENDING, COMPLETED, REVERTED = BankTransferStatus.PENDING, BankTransferStatus.COMPLETED, BankTransferStatus.REVERTED


@pytest.fixture
async def bank(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[SimulatedBank]:
    """Provide the simulated bank, on its own database."""
    sim = await open_bank(tmp_path, clock)
    yield sim
    await sim.close()


@pytest.fixture
async def flows(payments: PaymentsContainer, bank: SimulatedBank) -> AsyncIterator[CashFlows]:
    """Provide the cash flows on the payments test database and the bank."""
    cash = cash_flows(payments, bank)
    yield cash
    await cash.stop()


async def events(db: Database) -> list[events_pb2.BankTransferEvent]:
    """The BankTransferEvents in the outbox, oldest first."""
    async with db.read() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.sequence))).all()
    return [
        events_pb2.BankTransferEvent.FromString(r.payload)
        for r in rows
        if r.type == "furima.payments.v1.BankTransferEvent"
    ]


async def postings(db: Database, kind: str) -> int:
    """How many ledger transfers of a kind exist."""
    return await count(db, transfers, transfers.c.kind == kind)


async def assert_ledger_consistent(payments: PaymentsContainer) -> None:
    """VerifyLedger finds nothing wrong."""
    report = await payments.ledger.verify()
    assert report.consistent, report


# --- the pure rules ---------------------------------------------------------------------


def test_state_machine_allows_only_its_transitions() -> None:
    """PENDING → CONFIRMED → COMPLETED and PENDING → REVERTED; nothing leaves a final state or skips confirmation."""
    check_transition(PENDING, BankTransferStatus.CONFIRMED)
    check_transition(BankTransferStatus.CONFIRMED, COMPLETED)
    check_transition(PENDING, REVERTED)
    for current, to in ((PENDING, COMPLETED), (BankTransferStatus.CONFIRMED, REVERTED), (COMPLETED, REVERTED)):
        with pytest.raises(FailedPrecondition):
            check_transition(current, to)


@given(amount=st.integers(1, 10**9), balance=st.integers(-(10**9), 10**9))
def test_repayment_never_pushes_credit_above_zero(amount: int, balance: int) -> None:
    """The split pays at most what is owed to the line, never below zero, and the rest to cash."""
    to_credit, to_cash = repayment_split(amount, balance)
    assert to_credit + to_cash == amount
    assert 0 <= to_credit <= max(-balance, 0)
    assert to_cash >= 0


def test_every_completion_balances_and_a_payout_nets_the_fee() -> None:
    """Each kind's completion is a valid double entry; a withdrawal pays amount minus fee to the bank."""
    base = new_flow("btr_1", BankTransferKind.TOP_UP, cash_request(amount=3000), 0, START)
    withdrawal = dataclasses.replace(base, kind=BankTransferKind.WITHDRAWAL, fee=200, hold_transfer_id="trf_h")
    for flow in (base, withdrawal, dataclasses.replace(base, kind=BankTransferKind.CREDIT_REPAYMENT)):
        validate_transfer(completion_draft(flow, credit_balance=-1000))
    assert (instruction_for(withdrawal).amount, instruction_for(base).amount) == (2800, 3000)
    assert len(completion_draft(dataclasses.replace(withdrawal, fee=0)).legs) == 2  # no zero fee leg
    assert release_draft(withdrawal).reverses == "trf_h"


def test_retry_delay_doubles_up_to_five_minutes() -> None:
    """1 s, 2 s, 4 s … and never more than 5 minutes."""
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 9, 100)] == [1, 2, 4, 256, 300]


# --- happy paths ------------------------------------------------------------------------


async def test_top_up_credits_cash_once_the_bank_applied_it(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank
) -> None:
    """A top-up goes PENDING → CONFIRMED → COMPLETED in the call: cash +5000, bank clearing -5000, one event."""
    flow = await flows.top_up("svc-app", cash_request())
    assert (flow.status, flow.attempts, flow.fee) == (COMPLETED, 1, 0)
    assert flow.bank_reference
    assert await balance(payments.db, account_id("usr_a", AccountKind.CASH, "JPY")) == 5000
    assert await kind_balance(payments.db, AccountKind.BANK_CLEARING) == -5000
    assert await flows.get(flow.bank_transfer_id) == flow
    [event] = await events(payments.db)
    assert (event.bank_transfer_id, event.kind, event.status, event.amount.amount, event.bank_reference) == (
        flow.bank_transfer_id,
        "TOP_UP",
        "COMPLETED",
        5000,
        flow.bank_reference,
    )
    assert [(line.reference, line.platform_amount) for line in await bank.statement()] == [
        (flow.bank_transfer_id, 5000)
    ]
    await assert_ledger_consistent(payments)


async def test_withdrawal_pays_out_less_the_fee(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank
) -> None:
    """Withdrawing 3000 of 10000 sales: sales 7000, the bank pays 2800, fee revenue 200, holds back to 0."""
    await fund_sales(payments, "usr_a", 10_000)
    flow = await flows.withdraw("svc-app", cash_request(amount=3000))
    assert (flow.status, flow.fee) == (COMPLETED, PAYOUT_FEE)
    assert flow.hold_transfer_id
    assert flow.ledger_transfer_id
    assert await balance(payments.db, account_id("usr_a", AccountKind.SALES, "JPY")) == 7000
    assert await kind_balance(payments.db, AccountKind.BANK_CLEARING) == 2800
    assert await kind_balance(payments.db, AccountKind.FEE_REVENUE) == 200
    assert await kind_balance(payments.db, AccountKind.HOLDS) == 0
    assert [line.platform_amount for line in await bank.statement()] == [-2800]
    [event] = await events(payments.db)
    assert (event.kind, event.status, event.fee.amount) == ("WITHDRAWAL", "COMPLETED", 200)
    assert [await postings(payments.db, k) for k in (WITHDRAWAL_HOLD, WITHDRAWAL_PAYOUT)] == [1, 1]
    await assert_ledger_consistent(payments)


# --- refusals and rejections --------------------------------------------------------


async def test_bank_rejection_releases_the_hold(payments: PaymentsContainer, flows: CashFlows) -> None:
    """A closed account: the withdrawal is REVERTED (ACCOUNT_CLOSED), the held sales come back, no fee."""
    await fund_sales(payments, "usr_a", 10_000)
    flow = await flows.withdraw("svc-app", cash_request(amount=3000, account=CLOSED))
    assert (flow.status, flow.failure_reason) == (REVERTED, "ACCOUNT_CLOSED")
    assert await balance(payments.db, account_id("usr_a", AccountKind.SALES, "JPY")) == 10_000
    assert await kind_balance(payments.db, AccountKind.HOLDS) == 0
    assert await kind_balance(payments.db, AccountKind.FEE_REVENUE) == 0
    async with payments.db.read() as conn:
        release = (await conn.execute(select(transfers).where(transfers.c.id == flow.ledger_transfer_id))).one()
    assert (release.kind, release.reverses) == (WITHDRAWAL_RELEASE, flow.hold_transfer_id)
    assert [(e.status, e.failure_reason) for e in await events(payments.db)] == [("REVERTED", "ACCOUNT_CLOSED")]
    await assert_ledger_consistent(payments)


async def test_rejected_top_up_moves_nothing(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank
) -> None:
    """The bank rejects a top-up: REVERTED, no ledger transfer, an event saying why."""
    bank.force(cash_request().bank_account, Behaviour.REJECT)
    flow = await flows.top_up("svc-app", cash_request())
    assert (flow.status, flow.failure_reason, flow.ledger_transfer_id) == (REVERTED, "REJECTED_BY_BANK", None)
    assert await count(payments.db, transfers) == 0
    assert [e.status for e in await events(payments.db)] == ["REVERTED"]


async def test_insufficient_sales_records_nothing(payments: PaymentsContainer, flows: CashFlows) -> None:
    """Withdrawing more than the sales balance → INSUFFICIENT_FUNDS; no flow, no key, no transfer."""
    await fund_sales(payments, "usr_a", 1000)
    with pytest.raises(FailedPrecondition) as caught:
        await flows.withdraw("svc-app", cash_request(amount=3000))
    assert caught.value.reason == "INSUFFICIENT_FUNDS"
    assert [await count(payments.db, t) for t in (bank_transfers, idempotency_keys)] == [0, 0]
    assert await postings(payments.db, WITHDRAWAL_HOLD) == 0
    assert await balance(payments.db, account_id("usr_a", AccountKind.SALES, "JPY")) == 1000


async def test_frozen_wallet_cannot_withdraw(payments: PaymentsContainer, flows: CashFlows) -> None:
    """A suspended user's withdrawal → WALLET_FROZEN and nothing recorded; a top-up still lands."""
    await fund_sales(payments, "usr_a", 10_000)
    await freeze(payments, "usr_a")
    with pytest.raises(FailedPrecondition) as caught:
        await flows.withdraw("svc-app", cash_request(amount=3000))
    assert caught.value.reason == "WALLET_FROZEN"
    assert await count(payments.db, bank_transfers) == 0
    assert (await flows.top_up("svc-app", cash_request(key="k2"))).status is COMPLETED


async def test_hold_is_released_to_a_wallet_frozen_meanwhile(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """Frozen after the hold, rejected by the bank later: the sales still come back (a platform reversal)."""
    await fund_sales(payments, "usr_a", 10_000)
    bank.force(cash_request().bank_account, Behaviour.TIMEOUT_BEFORE, Behaviour.REJECT)
    flow = await flows.withdraw("svc-app", cash_request(amount=3000))
    assert flow.status is PENDING
    await freeze(payments, "usr_a")
    clock.advance(60)
    assert await flows.run_due() == 1
    assert (await flows.get(flow.bank_transfer_id)).status is REVERTED
    assert await balance(payments.db, account_id("usr_a", AccountKind.SALES, "JPY")) == 10_000
    await assert_ledger_consistent(payments)


async def test_invalid_requests_name_their_fields(payments: PaymentsContainer, flows: CashFlows) -> None:
    """Every bad field is reported at once; a withdrawal must exceed the fee; nothing is written."""
    bad = dataclasses.replace(cash_request(), idempotency_key="", user_id="bob", amount=0, currency="yen")
    with pytest.raises(InvalidArgument) as caught:
        await flows.top_up("svc-app", dataclasses.replace(bad, bank_account="12-34"))
    assert {v.field for v in caught.value.violations} == {
        "idempotency_key",
        "user_id",
        "amount.amount",
        "amount.currency",
        "bank_account",
    }
    with pytest.raises(InvalidArgument) as caught:
        await flows.withdraw("svc-app", cash_request(amount=PAYOUT_FEE))
    assert [v.field for v in caught.value.violations] == ["amount.amount"]
    assert await count(payments.db, bank_transfers) == 0


async def test_unknown_flow_is_not_found(flows: CashFlows) -> None:
    """Reading a flow that does not exist → NOT_FOUND."""
    with pytest.raises(NotFound):
        await flows.get("btr_nope")


# --- credit repayments ------------------------------------------------------------------


async def test_bank_repayment_pays_what_is_owed_and_the_rest_into_cash(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank
) -> None:
    """Owing 3000, a 5000 repayment from the bank: the credit line back to 0, 2000 into cash."""
    await use_credit(payments, "usr_a", 3000)
    flow_id = await payments.db.write_sync(
        lambda conn: flows.open_credit_repayment(conn, "usr_a", 5000, "JPY", cash_request().bank_account)
    )
    assert (await flows.get(flow_id)).status is PENDING
    done = await flows.advance(flow_id)
    assert done.status is COMPLETED
    assert await balance(payments.db, account_id("usr_a", AccountKind.CREDIT, "JPY")) == 0
    assert await balance(payments.db, account_id("usr_a", AccountKind.CASH, "JPY")) == 2000
    assert [(e.kind, e.status) for e in await events(payments.db)] == [("CREDIT_REPAYMENT", "COMPLETED")]
    assert [line.platform_amount for line in await bank.statement()] == [5000]
    await assert_ledger_consistent(payments)


async def test_repayment_split_is_decided_at_completion(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """Owing 1000 when recorded, 4500 when the bank finally confirms 4000: all 4000 go to the line, none to cash."""
    await use_credit(payments, "usr_a", 1000)
    bank.force(cash_request().bank_account, Behaviour.TIMEOUT_BEFORE)
    flow_id = await payments.db.write_sync(
        lambda conn: flows.open_credit_repayment(conn, "usr_a", 4000, "JPY", cash_request().bank_account)
    )
    assert (await flows.advance(flow_id)).status is PENDING
    await use_credit(payments, "usr_a", 3500)
    clock.advance(1)
    await flows.run_due()
    assert (await flows.get(flow_id)).status is COMPLETED
    assert await balance(payments.db, account_id("usr_a", AccountKind.CREDIT, "JPY")) == -500
    assert await balance(payments.db, account_id("usr_a", AccountKind.CASH, "JPY")) == 0
    await assert_ledger_consistent(payments)


async def test_bad_repayment_is_refused_inside_the_callers_transaction(
    payments: PaymentsContainer, flows: CashFlows
) -> None:
    """A repayment with no amount and a malformed account → INVALID_ARGUMENT naming both; nothing recorded."""
    with pytest.raises(InvalidArgument) as caught:
        await payments.db.write_sync(lambda conn: flows.open_credit_repayment(conn, "usr_a", 0, "JPY", "1-2-3"))
    assert {v.field for v in caught.value.violations} == {"amount.amount", "bank_account"}
    assert await count(payments.db, bank_transfers) == 0


# --- timeouts, resumption, crashes ------------------------------------------------------


async def test_lost_answer_is_queried_before_resubmitting(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """The bank applied it but the answer was lost: PENDING; the next round asks by reference and completes once."""
    bank.force(cash_request().bank_account, Behaviour.TIMEOUT_AFTER)
    flow = await flows.top_up("svc-app", cash_request())
    assert (flow.status, flow.attempts, flow.next_attempt_at) == (PENDING, 1, START + timedelta(seconds=1))
    assert await flows.run_due() == 0  # not due yet
    clock.advance(1)
    assert await flows.run_due() == 1
    done = await flows.get(flow.bank_transfer_id)
    assert (done.status, done.attempts) == (COMPLETED, 2)
    assert [op for op, ref in bank.calls if ref == flow.bank_transfer_id] == ["submit", "status"]
    assert len(await bank.statement()) == 1
    assert await postings(payments.db, BANK_TOP_UP) == 1
    assert await balance(payments.db, account_id("usr_a", AccountKind.CASH, "JPY")) == 5000
    await assert_ledger_consistent(payments)


async def test_request_lost_on_the_way_is_submitted_again(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """Nothing reached the bank: the query finds nothing, the resubmission applies it, once."""
    bank.force(cash_request().bank_account, Behaviour.TIMEOUT_BEFORE)
    flow = await flows.top_up("svc-app", cash_request())
    clock.advance(1)
    await flows.run_due()
    assert (await flows.get(flow.bank_transfer_id)).status is COMPLETED
    assert [op for op, ref in bank.calls if ref == flow.bank_transfer_id] == ["submit", "status", "submit"]
    assert len(await bank.statement()) == 1
    assert await postings(payments.db, BANK_TOP_UP) == 1


async def test_unanswered_calls_back_off(flows: CashFlows, bank: SimulatedBank, clock: FrozenClock) -> None:
    """Each unanswered round doubles the wait: due after 1 s, then 2 s, then 4 s."""
    bank.force(cash_request().bank_account, *[Behaviour.TIMEOUT_BEFORE] * 4)
    bank.force("0001-001-0000000", Behaviour.APPLY)  # unrelated
    flow = await flows.top_up("svc-app", cash_request())
    waits = []
    for _ in range(3):
        current = await flows.get(flow.bank_transfer_id)
        waits.append((current.next_attempt_at - clock.now()).total_seconds())
        clock.advance(waits[-1])
        # A status query that finds nothing, then a submission that is lost again.
        await flows.run_due()
    assert waits == [1, 2, 4]
    assert (await flows.get(flow.bank_transfer_id)).attempts == 4


async def test_slow_bank_leaves_the_flow_pending_for_the_runner(
    payments: PaymentsContainer, tmp_path: Path, clock: FrozenClock
) -> None:
    """A bank slower than the call's bank timeout: the call returns PENDING; a later round completes it."""
    slow = SimulatedBank(Database(f"sqlite+aiosqlite:///{tmp_path}/bank.db"), clock=clock, latency_ms=500)
    await slow.create_tables()
    fast = await open_bank(tmp_path, clock)  # the same bank's books, answering promptly
    try:
        impatient = CashFlows(
            payments.db, payments.ledger, payments.calls, payments.outbox, clock, slow, PAYOUT_FEE, bank_timeout=0.02
        )
        flow = await impatient.top_up("svc-app", cash_request())
        assert (flow.status, flow.attempts) == (PENDING, 1)
        assert await fast.status(flow.bank_transfer_id) is None  # the call gave up before the bank booked it
        clock.advance(1)
        assert await cash_flows(payments, fast).run_due() == 1
        assert (await impatient.get(flow.bank_transfer_id)).status is COMPLETED
    finally:
        await slow.close()
        await fast.close()


class Crash(BaseException):
    """The process dies here (nothing below catches it)."""


class CrashAfterTheBankApplied:
    """A gateway whose process dies right after the bank applied a submission."""

    def __init__(self, bank: SimulatedBank) -> None:
        self.bank = bank

    async def submit(self, instruction: object) -> object:
        await self.bank.submit(instruction)  # type: ignore[arg-type]
        raise Crash

    async def status(self, reference: str) -> object:
        return await self.bank.status(reference)

    async def statement(self) -> object:
        return await self.bank.statement()


async def test_crash_after_the_bank_applied_resumes_once(
    payments: PaymentsContainer, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """The process dies after the bank applied, before CONFIRMED: a fresh process completes it, once."""
    doomed = cash_flows(payments, CrashAfterTheBankApplied(bank))  # type: ignore[arg-type]
    with pytest.raises(Crash):
        await doomed.top_up("svc-app", cash_request())
    async with payments.db.read() as conn:
        [row] = (await conn.execute(select(bank_transfers))).all()
    assert (row.status, row.attempts) == ("PENDING", 0)
    assert len(await bank.statement()) == 1
    restarted = cash_flows(payments, bank)
    assert await restarted.run_due() == 1
    assert (await restarted.get(row.id)).status is COMPLETED
    assert len(await bank.statement()) == 1
    assert await postings(payments.db, BANK_TOP_UP) == 1
    assert len(await events(payments.db)) == 1
    await assert_ledger_consistent(payments)


async def test_crash_before_completion_resumes_without_the_bank(
    payments: PaymentsContainer, bank: SimulatedBank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies while posting the completion: it rolls back to CONFIRMED; a fresh process completes it."""
    doomed = cash_flows(payments, bank)
    real_post = payments.ledger.post

    def dying_post(conn: object, draft: object) -> object:
        if getattr(draft, "kind", "") == BANK_TOP_UP:
            raise Crash
        return real_post(conn, draft)  # type: ignore[arg-type]

    monkeypatch.setattr(payments.ledger, "post", dying_post)
    with pytest.raises(Crash):
        await doomed.top_up("svc-app", cash_request())
    monkeypatch.undo()
    async with payments.db.read() as conn:
        [row] = (await conn.execute(select(bank_transfers))).all()
    assert (row.status, row.ledger_transfer_id) == ("CONFIRMED", None)
    assert await count(payments.db, transfers) == 0
    restarted = cash_flows(payments, bank)
    assert await restarted.run_due() == 1
    assert (await restarted.get(row.id)).status is COMPLETED
    assert [op for op, ref in bank.calls if ref == row.id] == ["submit"]  # the bank was not asked again
    assert await postings(payments.db, BANK_TOP_UP) == 1
    await assert_ledger_consistent(payments)


async def test_two_runners_complete_each_flow_once(
    payments: PaymentsContainer, db: Database, bank: SimulatedBank, tmp_path: Path, clock: FrozenClock
) -> None:
    """Two processes' runners race on five due flows: each flow is applied, posted and announced once."""
    first = cash_flows(payments, bank)
    for n in range(5):
        bank.force(f"0001-001-000000{n}", Behaviour.TIMEOUT_AFTER)
        await first.top_up("svc-app", cash_request(key=f"k{n}", amount=1000 + n, account=f"0001-001-000000{n}"))
    other_db = Database(db.url)
    other_bank = await open_bank(tmp_path, clock)
    try:
        second = cash_flows(payments, other_bank, other_db)
        clock.advance(1)
        moved = await asyncio.gather(first.run_due(), second.run_due())
        assert 5 <= sum(moved) <= 10
        async with db.read() as conn:
            statuses = (await conn.execute(select(bank_transfers.c.status))).scalars().all()
        assert statuses == ["COMPLETED"] * 5
        assert await postings(db, BANK_TOP_UP) == 5
        assert len(await events(db)) == 5
        assert len(await bank.statement()) == 5
        assert await balance(db, account_id("usr_a", AccountKind.CASH, "JPY")) == sum(1000 + n for n in range(5))
        await assert_ledger_consistent(payments)
    finally:
        await other_bank.close()
        await other_db.dispose()


async def test_a_stale_runner_stops_at_the_guard(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """A runner holding an old PENDING snapshot of a completed flow changes nothing and reports the final state."""
    bank.force(cash_request().bank_account, Behaviour.TIMEOUT_AFTER)
    pending = await flows.top_up("svc-app", cash_request())
    clock.advance(1)
    await flows.run_due()
    late = cash_flows(payments, bank)
    after = await late._drive(pending)  # the snapshot it read before the other runner finished
    assert after.status is COMPLETED
    assert await postings(payments.db, BANK_TOP_UP) == 1
    assert len(await events(payments.db)) == 1


async def test_runner_finishes_flows_in_the_background(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """start() drives due flows every interval; the completion wakes event readers; stop() ends it."""
    bank.force(cash_request().bank_account, Behaviour.TIMEOUT_AFTER)
    flow = await flows.top_up("svc-app", cash_request())
    clock.advance(1)
    flows.start(0.01)
    await payments.outbox.wait(5)
    await flows.stop()
    assert (await flows.get(flow.bank_transfer_id)).status is COMPLETED


# --- idempotency ------------------------------------------------------------------------


async def test_replay_returns_the_flow_in_its_current_state(
    payments: PaymentsContainer, flows: CashFlows, bank: SimulatedBank, clock: FrozenClock
) -> None:
    """A replay answers with the first flow as it stands now (PENDING, later COMPLETED), moving nothing."""
    bank.force(cash_request().bank_account, Behaviour.TIMEOUT_AFTER)
    first = await flows.top_up("svc-app", cash_request())
    again = await flows.top_up("svc-app", cash_request())
    assert (again.bank_transfer_id, again.status) == (first.bank_transfer_id, PENDING)
    clock.advance(1)
    later = await flows.top_up("svc-app", cash_request())  # due now: the replay drives it
    assert (later.bank_transfer_id, later.status) == (first.bank_transfer_id, COMPLETED)
    assert await flows.top_up("svc-app", cash_request()) == later
    assert await count(payments.db, bank_transfers) == 1
    assert await postings(payments.db, BANK_TOP_UP) == 1
    assert len(await bank.statement()) == 1


async def test_key_reuse_and_scopes(payments: PaymentsContainer, flows: CashFlows) -> None:
    """Same key, other amount → IDEMPOTENCY_KEY_REUSED; another client or method has its own keys."""
    await fund_sales(payments, "usr_a", 10_000)
    first = await flows.top_up("svc-app", cash_request())
    with pytest.raises(InvalidArgument) as caught:
        await flows.top_up("svc-app", cash_request(amount=5001))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    other_client = await flows.top_up("svc-other", cash_request())
    withdrawal = await flows.withdraw("svc-app", cash_request(amount=3000))
    assert len({first.bank_transfer_id, other_client.bank_transfer_id, withdrawal.bank_transfer_id}) == 3


async def test_concurrent_calls_with_one_key_make_one_flow(payments: PaymentsContainer, flows: CashFlows) -> None:
    """Ten concurrent withdrawals with one key: one hold, one flow; the others are ABORTED (in flight) or replay it."""
    await fund_sales(payments, "usr_a", 10_000)
    results = await asyncio.gather(
        *(flows.withdraw("svc-app", cash_request(amount=3000)) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, BankTransfer | Aborted) for r in results), results
    assert len({r.bank_transfer_id for r in results if isinstance(r, BankTransfer)}) == 1
    assert all(r.reason == "IDEMPOTENCY_KEY_IN_FLIGHT" for r in results if isinstance(r, Aborted))
    assert await postings(payments.db, WITHDRAWAL_HOLD) == 1
    assert await balance(payments.db, account_id("usr_a", AccountKind.SALES, "JPY")) == 7000
