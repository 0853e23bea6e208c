"""The credit line: limits as floors, purchases within them, Tokyo-month statements, repayments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from furima.payments.v1 import events_pb2
from sqlalchemy import Connection, func, select, text

from libs.clock import FrozenClock
from libs.errors import DomainError, FailedPrecondition, InvalidArgument
from libs.storage import Database
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.credit import (
    BANK_REPAYMENT,
    CreditEntry,
    CreditLine,
    LimitBelowUsed,
    RepaymentRequest,
    RepaymentSource,
    StatementLineKind,
    StatementMonth,
    build_statement,
    parse_month,
    repayment_amount,
    validate_repayment,
)
from services.payments.domain.transfers import InsufficientFunds, Leg, TransferDraft
from services.payments.service.bank_gateway import CLOSED_ACCOUNT_SUFFIX, SimulatedBank
from services.payments.service.cash import CashFlows
from services.payments.service.credit import CreditLines
from services.payments.service.ledger import PostedTransfer
from services.payments.store import frozen as frozen_repo
from services.payments.store.tables import credit_lines, idempotency_keys, outbox, transfers

USER = "usr_a"
CASH = user_account(USER, AccountKind.CASH, "JPY")
CREDIT = user_account(USER, AccountKind.CREDIT, "JPY")
BANK = platform_account(AccountKind.BANK_CLEARING, "JPY")
HOLDS = platform_account(AccountKind.HOLDS, "JPY", shard=0)


class RecordingBank:
    """Stands in for the cash flows: records each bank repayment it is asked to open."""

    def __init__(self, fail: DomainError | None = None) -> None:
        self.opened: list[tuple[str, int, str, str]] = []
        self.fail = fail

    def open_credit_repayment(
        self, conn: Connection, user_id: str, amount: int, currency: str, bank_account: str
    ) -> str:
        assert conn.in_transaction()
        if self.fail is not None:
            raise self.fail
        self.opened.append((user_id, amount, currency, bank_account))
        return f"btr_{len(self.opened)}"


@pytest.fixture
def bank() -> RecordingBank:
    """Provide the stand-in of the cash flows."""
    return RecordingBank()


@pytest.fixture
def lines(payments: PaymentsContainer, bank: RecordingBank) -> CreditLines:
    """Provide the credit lines on the test database."""
    c = payments
    return CreditLines(c.db, c.ledger, c.calls, c.outbox, c.clock, bank)


def repay_request(key: str = "repay-1", amount: int | None = None, **changes: object) -> RepaymentRequest:
    """A repayment of usr_a's JPY line from the balance."""
    fields: dict[str, object] = {
        "idempotency_key": key,
        "user_id": USER,
        "amount": amount,
        "currency": "JPY",
        "source": RepaymentSource.BALANCE,
    }
    return RepaymentRequest(**{**fields, **changes})  # type: ignore[arg-type]


async def purchase(payments: PaymentsContainer, amount: int) -> PostedTransfer:
    """Buy on credit the way PaymentService will: money from the user's credit to the platform."""
    return await payments.ledger.transfer(
        TransferDraft("payment_capture", (Leg(CREDIT, -amount), Leg(HOLDS, amount)), f"purchase of {amount}")
    )


async def refund(payments: PaymentsContainer, amount: int) -> PostedTransfer:
    """Give money back onto the credit line (a refund of a purchase)."""
    return await payments.ledger.transfer(
        TransferDraft("payment_refund", (Leg(HOLDS, -amount), Leg(CREDIT, amount)), f"refund of {amount}")
    )


async def top_up(payments: PaymentsContainer, amount: int) -> None:
    """Put cash in usr_a's wallet."""
    await payments.ledger.transfer(TransferDraft("bank_top_up", (Leg(BANK, -amount), Leg(CASH, amount))))


async def balance(db: Database, account_id: str) -> int | None:
    """One account's stored balance."""
    async with db.read() as conn:
        value = await conn.scalar(text("SELECT balance FROM accounts WHERE id = :id"), {"id": account_id})
    return None if value is None else int(value)


async def floor(db: Database, account_id: str) -> int | None:
    """One account's floor."""
    async with db.read() as conn:
        return await conn.scalar(text("SELECT floor FROM accounts WHERE id = :id"), {"id": account_id})  # type: ignore[no-any-return]


async def count(db: Database, table: object) -> int:
    """Rows in a table."""
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def move_to(clock: FrozenClock, when: datetime) -> None:
    """Set the frozen clock to ``when`` (it only moves forward)."""
    assert when >= clock.now()
    clock.advance((when - clock.now()).total_seconds())


# --- the pure rules -------------------------------------------------------------------


def test_month_bounds_are_tokyo_midnights() -> None:
    """March 2026 in Tokyo runs from 2026-02-28 15:00 UTC to 2026-03-31 15:00 UTC; due 27 April."""
    march = parse_month("2026-03")
    assert (march.start, march.end) == (datetime(2026, 2, 28, 15, tzinfo=UTC), datetime(2026, 3, 31, 15, tzinfo=UTC))
    assert march.due_date == date(2026, 4, 27)
    assert parse_month("2026-12").due_date == date(2027, 1, 27)


@pytest.mark.parametrize("month", ["", "2026-3", "2026-13", "2026-00", "26-03", "2026/03", "1969-12", "9999-01"])
def test_malformed_month_names_the_field(month: str) -> None:
    """Anything but YYYY-MM (1970-01 to 9998-12) is INVALID_ARGUMENT on ``month``."""
    with pytest.raises(InvalidArgument) as caught:
        parse_month(month)
    assert [v.field for v in caught.value.violations] == ["month"]


def test_repayment_amount_is_at_most_what_is_owed() -> None:
    """Unset repays everything owed; more than owed, or nothing owed, is refused."""
    assert (repayment_amount(None, 700), repayment_amount(300, 700), repayment_amount(700, 700)) == (700, 300, 700)
    for requested, owed, reason in [(701, 700, "REPAYMENT_EXCEEDS_OWED"), (None, 0, "NOTHING_OWED")]:
        with pytest.raises(FailedPrecondition) as caught:
            repayment_amount(requested, owed)
        assert caught.value.reason == reason


def test_malformed_repayment_lists_every_field() -> None:
    """Missing key, a zero amount, a bad currency, no source: one violation each."""
    bad = RepaymentRequest("", "usr_a", 0, "yen", None)
    with pytest.raises(InvalidArgument) as caught:
        validate_repayment(bad)
    assert {v.field for v in caught.value.violations} == {
        "idempotency_key",
        "amount.amount",
        "amount.currency",
        "source",
    }
    with pytest.raises(InvalidArgument) as caught:
        validate_repayment(repay_request(source=RepaymentSource.BANK))
    assert [v.field for v in caught.value.violations] == ["bank_account"]


def test_statement_classifies_by_sign_and_transfer_kind() -> None:
    """Debits are purchases; credits are repayments for repayment kinds and refunds otherwise."""
    at = datetime(2026, 3, 10, tzinfo=UTC)
    found = build_statement(
        USER,
        "JPY",
        StatementMonth(2026, 3),
        -1000,
        [
            CreditEntry("trf_1", "payment_capture", -3000, "a purchase", at),
            CreditEntry("trf_2", "payment_refund", 500, "a refund", at),
            CreditEntry("trf_3", "credit_repayment", 1000, "from the balance", at),
            CreditEntry("trf_4", BANK_REPAYMENT, 200, "from the bank", at),
        ],
    )
    assert [(line.kind, line.amount) for line in found.lines] == [
        (StatementLineKind.PURCHASE, 3000),
        (StatementLineKind.REFUND, 500),
        (StatementLineKind.REPAYMENT, 1000),
        (StatementLineKind.REPAYMENT, 200),
    ]
    totals = (found.opening_owed, found.purchases, found.refunds, found.repayments, found.closing_owed)
    assert totals == (1000, 3000, 500, 1200, 2300)


def test_bank_repayment_kind_is_the_cash_flows_kind() -> None:
    """The statement recognises the transfers the cash flows post when a bank repayment completes."""
    from services.payments.domain.bank import BANK_CREDIT_REPAYMENT

    assert BANK_REPAYMENT == BANK_CREDIT_REPAYMENT


def test_line_used_and_available() -> None:
    """Used is what is owed; available is what the floor still allows."""
    line = CreditLine(USER, "JPY", 5000, -1200)
    assert (line.used, line.available) == (1200, 3800)
    assert (CreditLine(USER, "JPY", 0, 0).used, CreditLine(USER, "JPY", 0, 0).available) == (0, 0)


# --- limits and purchases -------------------------------------------------------------


async def test_no_line_means_limit_zero_and_no_purchase(lines: CreditLines, payments: PaymentsContainer) -> None:
    """A user who never had a line reads limit 0, and a purchase on credit is INSUFFICIENT_FUNDS."""
    line = await lines.line(USER, "JPY")
    assert (line.limit, line.used, line.available, line.updated_at) == (0, 0, 0, None)
    with pytest.raises(InsufficientFunds):
        await purchase(payments, 1)


async def test_set_raise_and_lower_the_limit(lines: CreditLines, payments: PaymentsContainer, db: Database) -> None:
    """Setting opens the account with floor -limit; raising and lowering (to what is used) move the floor."""
    first = await lines.set_limit(USER, "JPY", 5000)
    assert (first.limit, first.used, first.available) == (5000, 0, 5000)
    assert await floor(db, CREDIT.account_id) == -5000
    await purchase(payments, 3000)
    raised = await lines.set_limit(USER, "JPY", 8000)
    assert (raised.limit, raised.used, raised.available) == (8000, 3000, 5000)
    lowered = await lines.set_limit(USER, "JPY", 3000)
    assert (lowered.limit, lowered.used, lowered.available) == (3000, 3000, 0)
    assert await floor(db, CREDIT.account_id) == -3000
    assert await lines.line(USER, "JPY") == lowered


async def test_lowering_below_used_is_refused_and_changes_nothing(
    lines: CreditLines, payments: PaymentsContainer, db: Database, clock: FrozenClock
) -> None:
    """A limit below what is owed → LIMIT_BELOW_USED; the limit, its time and the floor stay."""
    before = await lines.set_limit(USER, "JPY", 5000)
    await purchase(payments, 3000)
    clock.advance(60)
    with pytest.raises(LimitBelowUsed) as caught:
        await lines.set_limit(USER, "JPY", 2999)
    assert (caught.value.reason, caught.value.metadata["used"]) == ("LIMIT_BELOW_USED", "3000")
    assert await lines.line(USER, "JPY") == CreditLine(USER, "JPY", 5000, -3000, before.updated_at)
    assert await floor(db, CREDIT.account_id) == -5000


async def test_bad_limit_is_invalid_argument(lines: CreditLines) -> None:
    """A negative limit and a currency that is not ISO 4217 are named."""
    with pytest.raises(InvalidArgument) as caught:
        await lines.set_limit(USER, "jpy", -1)
    assert {v.field for v in caught.value.violations} == {"limit.amount", "limit.currency"}


async def test_purchases_within_the_limit_and_not_beyond(
    lines: CreditLines, payments: PaymentsContainer, db: Database
) -> None:
    """¥4,000 then ¥1,000 fit a ¥5,000 line; one more yen is INSUFFICIENT_FUNDS; a zero limit closes it."""
    await lines.set_limit(USER, "JPY", 5000)
    await purchase(payments, 4000)
    await purchase(payments, 1000)
    with pytest.raises(InsufficientFunds):
        await purchase(payments, 1)
    assert await balance(db, CREDIT.account_id) == -5000
    await refund(payments, 5000)
    await lines.set_limit(USER, "JPY", 0)
    with pytest.raises(InsufficientFunds):
        await purchase(payments, 1)


async def test_concurrent_purchases_never_exceed_the_limit(
    lines: CreditLines, payments: PaymentsContainer, db: Database
) -> None:
    """20 concurrent ¥700 purchases on a ¥5,000 line: exactly 7 succeed, ¥4,900 used."""
    await lines.set_limit(USER, "JPY", 5000)
    results = await asyncio.gather(*(purchase(payments, 700) for _ in range(20)), return_exceptions=True)
    assert sum(isinstance(r, PostedTransfer) for r in results) == 7
    assert all(isinstance(r, PostedTransfer | InsufficientFunds) for r in results)
    assert (await lines.line(USER, "JPY")).used == 4900
    assert (await payments.ledger.verify()).consistent


async def test_lowering_races_purchases_without_crossing_the_floor(
    lines: CreditLines, payments: PaymentsContainer, db: Database
) -> None:
    """Purchases racing a lowered limit: whichever wins, what is used never exceeds the stored limit."""
    await lines.set_limit(USER, "JPY", 10_000)
    jobs = [purchase(payments, 1000) for _ in range(8)] + [lines.set_limit(USER, "JPY", 4000)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert all(not isinstance(r, BaseException) or isinstance(r, InsufficientFunds | LimitBelowUsed) for r in results)
    line = await lines.line(USER, "JPY")
    assert line.used <= line.limit
    assert await floor(db, CREDIT.account_id) == -line.limit
    async with db.read() as conn:
        assert await conn.scalar(select(credit_lines.c.credit_limit)) == line.limit


# --- statements -----------------------------------------------------------------------


async def test_statement_splits_months_at_tokyo_midnight(
    lines: CreditLines, payments: PaymentsContainer, clock: FrozenClock
) -> None:
    """23:59:59 JST on 31 March is March; 00:00 JST on 1 April (15:00 UTC) is April; totals chain."""
    await lines.set_limit(USER, "JPY", 50_000)
    await top_up(payments, 10_000)
    first = await purchase(payments, 3000)  # 2026-03-01 21:00 JST
    move_to(clock, datetime(2026, 3, 20, tzinfo=UTC))
    back = await refund(payments, 500)
    move_to(clock, datetime(2026, 3, 31, 14, 59, 59, tzinfo=UTC))
    late = await purchase(payments, 2000)
    move_to(clock, datetime(2026, 3, 31, 15, tzinfo=UTC))
    april = await purchase(payments, 1000)
    repaid = await lines.repay("svc", repay_request(amount=4500))

    march_stmt = await lines.statement(USER, "2026-03", "JPY")
    assert [(line.kind, line.transfer_id, line.amount) for line in march_stmt.lines] == [
        (StatementLineKind.PURCHASE, first.transfer_id, 3000),
        (StatementLineKind.REFUND, back.transfer_id, 500),
        (StatementLineKind.PURCHASE, late.transfer_id, 2000),
    ]
    assert (march_stmt.opening_owed, march_stmt.purchases, march_stmt.refunds, march_stmt.closing_owed) == (
        0,
        5000,
        500,
        4500,
    )
    assert march_stmt.due_date == date(2026, 4, 27)
    april_stmt = await lines.statement(USER, "2026-04", "JPY")
    assert [(line.kind, line.transfer_id) for line in april_stmt.lines] == [
        (StatementLineKind.PURCHASE, april.transfer_id),
        (StatementLineKind.REPAYMENT, repaid.transfer_id),
    ]
    assert (april_stmt.opening_owed, april_stmt.repayments, april_stmt.closing_owed) == (4500, 4500, 1000)
    assert april_stmt.due_date == date(2026, 5, 27)
    february = await lines.statement(USER, "2026-02", "JPY")
    assert (february.opening_owed, february.lines, february.closing_owed) == (0, (), 0)


async def test_statement_is_reproducible(lines: CreditLines, payments: PaymentsContainer, clock: FrozenClock) -> None:
    """A month's statement reads the same after later activity (it comes from the immutable ledger)."""
    await lines.set_limit(USER, "JPY", 50_000)
    await purchase(payments, 1200)
    before = await lines.statement(USER, "2026-03", "JPY")
    move_to(clock, datetime(2026, 4, 5, tzinfo=UTC))
    await purchase(payments, 800)
    assert await lines.statement(USER, "2026-03", "JPY") == before
    assert (await lines.statement(USER, "2026-04", "JPY")).opening_owed == before.closing_owed == 1200


# --- repayments -----------------------------------------------------------------------


async def test_partial_then_full_repayment_from_the_balance(
    lines: CreditLines, payments: PaymentsContainer, db: Database
) -> None:
    """¥1,000 of ¥3,000 owed, then the rest: cash pays, the line frees up, one CreditRepaid each."""
    await lines.set_limit(USER, "JPY", 5000)
    await top_up(payments, 5000)
    await purchase(payments, 3000)
    partial = await lines.repay("svc", repay_request("r-1", 1000))
    assert (partial.amount, partial.line.used, partial.line.available) == (1000, 2000, 3000)
    full = await lines.repay("svc", repay_request("r-2"))
    assert (full.amount, full.line.used, full.line.available, full.bank_transfer_id) == (2000, 0, 5000, "")
    assert (await balance(db, CASH.account_id), await balance(db, CREDIT.account_id)) == (2000, 0)
    async with db.read() as conn:
        kinds = (await conn.execute(select(transfers.c.kind).where(transfers.c.id == full.transfer_id))).scalars()
        assert list(kinds) == ["credit_repayment"]
        events = (await conn.execute(select(outbox.c.type, outbox.c.payload).order_by(outbox.c.sequence))).all()
    repaid = [events_pb2.CreditRepaid.FromString(e.payload) for e in events]
    assert {e.type for e in events} == {"furima.payments.v1.CreditRepaid"}
    assert [(e.user_id, e.amount.amount, e.transfer_id) for e in repaid] == [
        (USER, 1000, partial.transfer_id),
        (USER, 2000, full.transfer_id),
    ]
    assert (await payments.ledger.verify()).consistent


@pytest.mark.parametrize(
    ("cash", "owed", "amount", "reason"),
    [
        (5000, 3000, 3001, "REPAYMENT_EXCEEDS_OWED"),
        (5000, 0, None, "NOTHING_OWED"),
        (2999, 3000, None, "INSUFFICIENT_FUNDS"),
    ],
)
async def test_refused_repayment_moves_nothing(
    lines: CreditLines,
    payments: PaymentsContainer,
    db: Database,
    cash: int,
    owed: int,
    amount: int | None,
    reason: str,
) -> None:
    """More than owed, nothing owed, or too little cash: FAILED_PRECONDITION, and no transfer, event or key."""
    await lines.set_limit(USER, "JPY", 5000)
    await top_up(payments, cash)
    if owed:
        await purchase(payments, owed)
    before = [await count(db, t) for t in (transfers, outbox, idempotency_keys)]
    with pytest.raises(FailedPrecondition) as caught:
        await lines.repay("svc", repay_request(amount=amount))
    assert caught.value.reason == reason
    assert [await count(db, t) for t in (transfers, outbox, idempotency_keys)] == before
    assert (await balance(db, CASH.account_id), await balance(db, CREDIT.account_id)) == (cash, -owed)


async def test_frozen_wallet_cannot_repay_from_the_balance(
    lines: CreditLines, payments: PaymentsContainer, db: Database, clock: FrozenClock
) -> None:
    """A suspended user's cash stays put: WALLET_FROZEN, nothing moves."""
    await lines.set_limit(USER, "JPY", 5000)
    await top_up(payments, 5000)
    await purchase(payments, 1000)
    async with db.transaction() as tx:
        await frozen_repo.freeze(tx.conn, USER, "suspended", clock.now())
    with pytest.raises(FailedPrecondition) as caught:
        await lines.repay("svc", repay_request())
    assert caught.value.reason == "WALLET_FROZEN"
    assert await balance(db, CREDIT.account_id) == -1000


async def test_replay_and_key_reuse(lines: CreditLines, payments: PaymentsContainer, db: Database) -> None:
    """The same key and request replays the first answer; the same key for another amount is refused."""
    await lines.set_limit(USER, "JPY", 5000)
    await top_up(payments, 5000)
    await purchase(payments, 3000)
    first = await lines.repay("svc", repay_request(amount=1000))
    await purchase(payments, 500)
    assert await lines.repay("svc", repay_request(amount=1000)) == first
    assert await balance(db, CREDIT.account_id) == -2500
    with pytest.raises(InvalidArgument) as caught:
        await lines.repay("svc", repay_request(amount=999))
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    # Keys belong to their caller: another client's "repay-1" is a new repayment.
    assert (await lines.repay("other", repay_request(amount=999))).line.used == 1501


async def test_refused_key_can_be_retried_once_funded(lines: CreditLines, payments: PaymentsContainer) -> None:
    """A refusal is not remembered: after a top-up the same key repays."""
    await lines.set_limit(USER, "JPY", 5000)
    await purchase(payments, 1000)
    with pytest.raises(InsufficientFunds):
        await lines.repay("svc", repay_request())
    await top_up(payments, 1000)
    assert (await lines.repay("svc", repay_request())).line.used == 0


async def test_concurrent_full_repayments_repay_once(
    lines: CreditLines, payments: PaymentsContainer, db: Database
) -> None:
    """Five racing "repay everything" calls (different keys): one repays, the others find nothing owed."""
    await lines.set_limit(USER, "JPY", 5000)
    await top_up(payments, 10_000)
    await purchase(payments, 3000)
    calls = [lines.repay("svc", repay_request(f"all-{i}")) for i in range(5)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, FailedPrecondition)]
    assert (len(refused), {r.reason for r in refused}) == (4, {"NOTHING_OWED"})
    assert (await balance(db, CASH.account_id), await balance(db, CREDIT.account_id)) == (7000, 0)


async def test_bank_repayment_opens_a_saga_in_the_transaction(
    lines: CreditLines, payments: PaymentsContainer, bank: RecordingBank, db: Database
) -> None:
    """BANK: the cash flows open a saga for what is owed; the line waits for the bank; a replay reuses it."""
    await lines.set_limit(USER, "JPY", 5000)
    await purchase(payments, 2500)
    request = repay_request(source=RepaymentSource.BANK, bank_account="0001-001-1234567")
    started = await lines.repay("svc", request)
    assert (started.bank_transfer_id, started.transfer_id, started.amount, started.line.used) == (
        "btr_1",
        "",
        2500,
        2500,
    )
    assert await lines.repay("svc", request) == started
    assert bank.opened == [(USER, 2500, "JPY", "0001-001-1234567")]
    assert await balance(db, CREDIT.account_id) == -2500


async def test_failed_bank_opening_is_not_remembered(
    payments: PaymentsContainer, lines: CreditLines, bank: RecordingBank, db: Database
) -> None:
    """When the cash flows refuse, the repayment is not recorded and the key stays free."""
    await lines.set_limit(USER, "JPY", 5000)
    await purchase(payments, 2500)
    bank.fail = InvalidArgument("no such bank account", reason="BAD_BANK_ACCOUNT")
    request = repay_request(source=RepaymentSource.BANK, bank_account="nowhere")
    with pytest.raises(InvalidArgument):
        await lines.repay("svc", request)
    assert await count(db, idempotency_keys) == 0
    bank.fail = None
    assert (await lines.repay("svc", request)).bank_transfer_id == "btr_1"


# --- with the real cash flows ---------------------------------------------------------


@pytest.fixture
async def flows(payments: PaymentsContainer, tmp_path: Path) -> AsyncIterator[CashFlows]:
    """Provide the cash flows against a simulated bank with its own database."""
    simulated = await SimulatedBank.open(f"sqlite+aiosqlite:///{tmp_path}/bank.db", clock=payments.clock)
    c = payments
    yield CashFlows(c.db, c.ledger, c.calls, c.outbox, c.clock, simulated, payout_fee=0)
    await simulated.close()


async def test_bank_repayment_repays_the_line_when_the_bank_pays(
    payments: PaymentsContainer, flows: CashFlows, db: Database
) -> None:
    """BANK with the real cash flows: PENDING until driven, then the line is repaid and the statement says REPAYMENT."""
    c = payments
    lines = CreditLines(c.db, c.ledger, c.calls, c.outbox, c.clock, flows)
    await lines.set_limit(USER, "JPY", 5000)
    await purchase(payments, 2500)
    started = await lines.repay("svc", repay_request(source=RepaymentSource.BANK, bank_account="0001-001-1234567"))
    assert (await flows.get(started.bank_transfer_id)).status.value == "PENDING"
    assert (await lines.line(USER, "JPY")).used == 2500
    done = await flows.advance(started.bank_transfer_id)
    assert done.status.value == "COMPLETED"
    assert (await lines.line(USER, "JPY")).used == 0
    statement = await lines.statement(USER, "2026-03", "JPY")
    assert [(line.kind, line.amount) for line in statement.lines] == [
        (StatementLineKind.PURCHASE, 2500),
        (StatementLineKind.REPAYMENT, 2500),
    ]
    assert statement.closing_owed == 0
    assert (await payments.ledger.verify()).consistent


async def test_rejected_bank_repayment_leaves_the_line_owed(payments: PaymentsContainer, flows: CashFlows) -> None:
    """A closed bank account: the saga is REVERTED and what is owed stays owed."""
    c = payments
    lines = CreditLines(c.db, c.ledger, c.calls, c.outbox, c.clock, flows)
    await lines.set_limit(USER, "JPY", 5000)
    await purchase(payments, 1000)
    closed = f"0001-001-{CLOSED_ACCOUNT_SUFFIX}"
    started = await lines.repay("svc", repay_request(source=RepaymentSource.BANK, bank_account=closed))
    assert (await flows.advance(started.bank_transfer_id)).status.value == "REVERTED"
    assert (await lines.line(USER, "JPY")).used == 1000
