"""Money between a bank and a wallet: bank transfer flows, their state machine, request
validation, what the bank is asked, and the ledger movement of each step.

A flow is a saga: PENDING (recorded; a withdrawal's funds are held) → CONFIRMED (the
bank applied it) → COMPLETED (the ledger shows it), or PENDING → REVERTED (the bank
rejected it; a withdrawal's hold goes back). Our id of the flow is the reference the
bank sees, so asking the bank twice never moves money twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.errors import FailedPrecondition, Violations
from services.payments.domain.accounts import (
    AccountKind,
    check_user_id,
    is_currency,
    platform_account,
    shard_of,
    user_account,
)
from services.payments.domain.transfers import Leg, TransferDraft, reversal

MAX_KEY_LENGTH = 128
BANK_ACCOUNT = re.compile(r"^\d{4}-\d{3}-\d{7}$")
"""bank (4 digits) - branch (3) - account (7), e.g. ``0001-001-1234567``."""

# Kinds of the ledger transfers the flows post.
BANK_TOP_UP = "bank_top_up"
WITHDRAWAL_HOLD = "bank_withdrawal_hold"
WITHDRAWAL_PAYOUT = "bank_withdrawal_payout"
WITHDRAWAL_RELEASE = "bank_withdrawal_release"
"""Returns a rejected withdrawal's hold. Posted as the reversal of the hold, so it
reaches a frozen wallet too and happens at most once (``transfers.reverses`` is unique).
"""
BANK_CREDIT_REPAYMENT = "bank_credit_repayment"

RETRY_BASE = timedelta(seconds=1)
RETRY_MAX = timedelta(minutes=5)


class BankTransferKind(StrEnum):
    """What a flow does."""

    TOP_UP = "TOP_UP"
    WITHDRAWAL = "WITHDRAWAL"
    CREDIT_REPAYMENT = "CREDIT_REPAYMENT"


class BankTransferStatus(StrEnum):
    """Where a flow stands."""

    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    COMPLETED = "COMPLETED"
    REVERTED = "REVERTED"


FINAL = frozenset({BankTransferStatus.COMPLETED, BankTransferStatus.REVERTED})
TRANSITIONS: dict[BankTransferStatus, frozenset[BankTransferStatus]] = {
    BankTransferStatus.PENDING: frozenset({BankTransferStatus.CONFIRMED, BankTransferStatus.REVERTED}),
    BankTransferStatus.CONFIRMED: frozenset({BankTransferStatus.COMPLETED}),
    BankTransferStatus.COMPLETED: frozenset(),
    BankTransferStatus.REVERTED: frozenset(),
}


def check_transition(current: BankTransferStatus, to: BankTransferStatus) -> None:
    """Refuse a move the state machine does not have (FAILED_PRECONDITION ``ILLEGAL_TRANSITION``)."""
    if to not in TRANSITIONS[current]:
        raise FailedPrecondition(f"a bank transfer cannot go from {current} to {to}", reason="ILLEGAL_TRANSITION")


@dataclass(frozen=True)
class BankTransfer:
    """One flow between a bank account and a wallet, as persisted."""

    bank_transfer_id: str
    kind: BankTransferKind
    status: BankTransferStatus
    user_id: str
    amount: int
    currency: str
    fee: int
    bank_account: str
    bank_reference: str | None
    failure_reason: str
    attempts: int
    hold_transfer_id: str | None
    ledger_transfer_id: str | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime

    @property
    def is_final(self) -> bool:
        """Whether nothing will change any more."""
        return self.status in FINAL


def new_flow(
    bank_transfer_id: str,
    kind: BankTransferKind,
    request: CashRequest,
    fee: int,
    now: datetime,
) -> BankTransfer:
    """A flow just recorded: PENDING, no attempt yet, due at once."""
    return BankTransfer(
        bank_transfer_id=bank_transfer_id,
        kind=kind,
        status=BankTransferStatus.PENDING,
        user_id=request.user_id,
        amount=request.amount,
        currency=request.currency,
        fee=fee,
        bank_account=request.bank_account,
        bank_reference=None,
        failure_reason="",
        attempts=0,
        hold_transfer_id=None,
        ledger_transfer_id=None,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after ``attempts`` unanswered bank calls: doubling, capped."""
    doublings: int = min(max(attempts - 1, 0), 16)
    return min(RETRY_BASE * (1 << doublings), RETRY_MAX)


# --- requests -----------------------------------------------------------------------


@dataclass(frozen=True)
class CashRequest:
    """A top-up or a withdrawal as asked for (``idempotency_key`` is empty for a repayment)."""

    idempotency_key: str
    user_id: str
    amount: int
    currency: str
    bank_account: str


def is_bank_account(value: str) -> bool:
    """Whether ``value`` is a bank account number of the form ``0001-001-1234567``."""
    return bool(BANK_ACCOUNT.match(value))


def _check_common(request: CashRequest, problems: Violations) -> None:
    check_user_id(problems, request.user_id)
    if request.amount <= 0:
        problems.add("amount.amount", "must be greater than zero")
    if not is_currency(request.currency):
        problems.add("amount.currency", "must be an ISO 4217 code of three upper-case letters such as JPY")
    if not is_bank_account(request.bank_account):
        problems.add("bank_account", "must be bank-branch-account digits such as 0001-001-1234567")


def _check_key(request: CashRequest, problems: Violations) -> None:
    problems.require(request.idempotency_key, "idempotency_key")
    if len(request.idempotency_key) > MAX_KEY_LENGTH:
        problems.add("idempotency_key", f"at most {MAX_KEY_LENGTH} characters")


def validate_top_up(request: CashRequest) -> None:
    """Refuse a malformed top-up, naming the contract's field paths."""
    problems = Violations()
    _check_key(request, problems)
    _check_common(request, problems)
    problems.raise_if_any("the top-up has invalid fields")


def validate_withdrawal(request: CashRequest, payout_fee: int) -> None:
    """Refuse a malformed withdrawal; its amount must exceed the payout fee."""
    problems = Violations()
    _check_key(request, problems)
    _check_common(request, problems)
    if request.amount > 0 and request.amount <= payout_fee:
        problems.add("amount.amount", f"must exceed the payout fee of {payout_fee}")
    problems.raise_if_any("the withdrawal has invalid fields")


def validate_repayment(request: CashRequest) -> None:
    """Refuse a malformed bank repayment of a credit line (no key: the caller has its own)."""
    problems = Violations()
    _check_common(request, problems)
    problems.raise_if_any("the repayment has invalid fields")


# --- the bank's side ----------------------------------------------------------------


class Direction(StrEnum):
    """Which way the money goes at the bank, seen from the platform's bank account."""

    COLLECT = "COLLECT"
    PAY = "PAY"


class BankOutcome(StrEnum):
    """What the bank did with an instruction."""

    APPLIED = "APPLIED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class BankInstruction:
    """What we ask the bank to do; ``reference`` (our flow id) makes it idempotent there."""

    reference: str
    direction: Direction
    bank_account: str
    amount: int
    currency: str


@dataclass(frozen=True)
class BankAnswer:
    """The bank's answer about one reference."""

    reference: str
    outcome: BankOutcome
    bank_reference: str
    reason: str = ""


@dataclass(frozen=True)
class StatementLine:
    """A movement the bank applied on the platform's account."""

    reference: str
    bank_reference: str
    direction: Direction
    amount: int
    currency: str
    booked_at: datetime

    @property
    def platform_amount(self) -> int:
        """Signed from the platform's point of view: money in is positive."""
        return self.amount if self.direction is Direction.COLLECT else -self.amount


def instruction_for(flow: BankTransfer) -> BankInstruction:
    """The bank instruction of a flow: collect a top-up or repayment, pay out a
    withdrawal net of its fee.
    """
    if flow.kind is BankTransferKind.WITHDRAWAL:
        return BankInstruction(
            flow.bank_transfer_id, Direction.PAY, flow.bank_account, flow.amount - flow.fee, flow.currency
        )
    return BankInstruction(flow.bank_transfer_id, Direction.COLLECT, flow.bank_account, flow.amount, flow.currency)


# --- ledger movements ----------------------------------------------------------------


def _holds(flow: BankTransfer) -> Leg:
    holds = platform_account(AccountKind.HOLDS, flow.currency, shard=shard_of(flow.bank_transfer_id))
    return Leg(holds, flow.amount)


def hold_draft(flow: BankTransfer) -> TransferDraft:
    """A withdrawal's hold: sales proceeds → the platform's holds (refused by the ledger when
    the sales balance is short or the wallet is frozen).
    """
    sales = user_account(flow.user_id, AccountKind.SALES, flow.currency)
    return TransferDraft(
        WITHDRAWAL_HOLD, (Leg(sales, -flow.amount), _holds(flow)), f"withdrawal {flow.bank_transfer_id} held"
    )


def release_draft(flow: BankTransfer) -> TransferDraft:
    """The hold of a rejected withdrawal going back to the user's sales proceeds."""
    if flow.hold_transfer_id is None:
        raise ValueError(f"{flow.bank_transfer_id} has no hold to release")
    return reversal(
        WITHDRAWAL_RELEASE,
        flow.hold_transfer_id,
        hold_draft(flow).legs,
        f"withdrawal {flow.bank_transfer_id} rejected by the bank: hold released",
    )


def repayment_split(amount: int, credit_balance: int) -> tuple[int, int]:
    """How a repayment of ``amount`` divides into (to the credit line, to cash): at most
    what is owed (the negative credit balance) goes to the line, never pushing it above 0.
    """
    owed = max(-credit_balance, 0)
    to_credit = min(amount, owed)
    return to_credit, amount - to_credit


def completion_draft(flow: BankTransfer, credit_balance: int = 0) -> TransferDraft:
    """The movement that completes a flow the bank applied. Bank clearing is the
    counter-side of money at the bank: debited when money comes in, credited when it leaves.
    ``credit_balance`` is the user's credit balance now (credit repayments only).
    """
    clearing = platform_account(AccountKind.BANK_CLEARING, flow.currency)
    ref = flow.bank_transfer_id
    if flow.kind is BankTransferKind.TOP_UP:
        cash = user_account(flow.user_id, AccountKind.CASH, flow.currency)
        return TransferDraft(BANK_TOP_UP, (Leg(clearing, -flow.amount), Leg(cash, flow.amount)), f"bank top-up {ref}")
    if flow.kind is BankTransferKind.WITHDRAWAL:
        legs = [Leg(_holds(flow).account, -flow.amount), Leg(clearing, flow.amount - flow.fee)]
        if flow.fee:
            fees = platform_account(AccountKind.FEE_REVENUE, flow.currency, shard=shard_of(ref))
            legs.append(Leg(fees, flow.fee))
        return TransferDraft(WITHDRAWAL_PAYOUT, tuple(legs), f"withdrawal {ref} paid out")
    to_credit, to_cash = repayment_split(flow.amount, credit_balance)
    legs = [Leg(clearing, -flow.amount)]
    if to_credit:
        legs.append(Leg(user_account(flow.user_id, AccountKind.CREDIT, flow.currency), to_credit))
    if to_cash:
        legs.append(Leg(user_account(flow.user_id, AccountKind.CASH, flow.currency), to_cash))
    return TransferDraft(BANK_CREDIT_REPAYMENT, tuple(legs), f"credit repayment {ref} from the bank")
