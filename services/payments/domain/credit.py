"""The pay-later credit line: limits, what is owed, repayments and monthly statements.

A user's credit account has its floor at minus the limit; its balance is negative while
the line is used, so what the user owes is minus the balance. Pure: no SQL, no gRPC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from libs.errors import FailedPrecondition, Violations
from services.payments.domain.accounts import check_user_id, is_currency

DEFAULT_CURRENCY = "JPY"
MAX_KEY_LENGTH = 128
MAX_BANK_ACCOUNT_LENGTH = 40
DUE_DAY = 27
"""Statements fall due on this day of the month after the statement's month."""

BALANCE_REPAYMENT = "credit_repayment"
"""The kind of the transfer that repays a credit line from the user's cash balance."""
BANK_REPAYMENT = "bank_credit_repayment"
"""The kind of the transfer that credits a line when a bank repayment completes (cash flows)."""
REPAYMENT_KINDS = frozenset({BALANCE_REPAYMENT, BANK_REPAYMENT})


def _tokyo() -> tzinfo:
    try:
        return ZoneInfo("Asia/Tokyo")
    except ZoneInfoNotFoundError:  # pragma: no cover — an image without a tz database
        # Japan has kept UTC+9 without daylight saving since 1951: the fixed offset is exact.
        return timezone(timedelta(hours=9), "JST")


TOKYO = _tokyo()
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class LimitBelowUsed(FailedPrecondition):
    """The new limit is less than what the user already owes."""

    default_reason = "LIMIT_BELOW_USED"


class RepaymentSource(StrEnum):
    """Where the money of a repayment comes from."""

    BALANCE = "balance"
    BANK = "bank"


@dataclass(frozen=True)
class CreditLine:
    """A user's line in one currency: its limit and the credit account's balance."""

    user_id: str
    currency: str
    limit: int
    balance: int
    updated_at: datetime | None = None
    """When the limit was last set (None: never, the limit is zero)."""

    @property
    def used(self) -> int:
        """What the user owes (zero when the balance is not negative)."""
        return max(0, -self.balance)

    @property
    def available(self) -> int:
        """What may still be drawn: down to the floor (minus the limit)."""
        return max(0, self.limit + self.balance)


@dataclass(frozen=True)
class RepaymentRequest:
    """A request to repay a credit line; ``amount`` None means everything owed."""

    idempotency_key: str
    user_id: str
    amount: int | None
    currency: str
    source: RepaymentSource | None
    bank_account: str = ""


@dataclass(frozen=True)
class Repayment:
    """A repayment that happened (from the balance) or started (a bank transfer saga)."""

    line: CreditLine
    amount: int
    transfer_id: str
    bank_transfer_id: str
    repaid_at: datetime


def _check_currency(problems: Violations, currency: str, path: str) -> None:
    if not is_currency(currency):
        problems.add(path, "must be an ISO 4217 code of three upper-case letters such as JPY")


def validate_limit(user_id: str, limit: int, currency: str) -> None:
    """Refuse a malformed SetCreditLimit: a user id, a limit ≥ 0, an ISO 4217 currency."""
    problems = Violations()
    check_user_id(problems, user_id)
    if limit < 0:
        problems.add("limit.amount", "must not be negative (zero closes the line)")
    _check_currency(problems, currency, "limit.currency")
    problems.raise_if_any("the credit limit has invalid fields")


def validate_line_query(user_id: str, currency: str) -> None:
    """Refuse a malformed read of a line: a user id and an ISO 4217 currency."""
    problems = Violations()
    check_user_id(problems, user_id)
    _check_currency(problems, currency, "currency")
    problems.raise_if_any()


def validate_repayment(request: RepaymentRequest) -> None:
    """Refuse a malformed repayment, naming the contract's field paths."""
    problems = Violations()
    problems.require(request.idempotency_key, "idempotency_key")
    if len(request.idempotency_key) > MAX_KEY_LENGTH:
        problems.add("idempotency_key", f"at most {MAX_KEY_LENGTH} characters")
    check_user_id(problems, request.user_id)
    if request.amount is not None and request.amount <= 0:
        problems.add("amount.amount", "must be greater than zero (leave amount unset to repay everything owed)")
    _check_currency(problems, request.currency, "amount.currency")
    if request.source is None:
        problems.add("source", "must be REPAYMENT_SOURCE_BALANCE or REPAYMENT_SOURCE_BANK")
    elif request.source is RepaymentSource.BANK:
        if not request.bank_account or len(request.bank_account) > MAX_BANK_ACCOUNT_LENGTH:
            problems.add(
                "bank_account", f"is required for a bank repayment (at most {MAX_BANK_ACCOUNT_LENGTH} characters)"
            )
    elif request.bank_account:
        problems.add("bank_account", "is only for REPAYMENT_SOURCE_BANK")
    problems.raise_if_any("the repayment has invalid fields")


def repayment_amount(requested: int | None, owed: int) -> int:
    """What to repay: everything owed when ``requested`` is None, else ``requested`` if it
    is not more than owed. FAILED_PRECONDITION ``NOTHING_OWED`` or ``REPAYMENT_EXCEEDS_OWED``.
    """
    if owed <= 0:
        raise FailedPrecondition("nothing is owed on this credit line", reason="NOTHING_OWED")
    if requested is None:
        return owed
    if requested > owed:
        raise FailedPrecondition(
            f"the repayment ({requested}) is more than what is owed ({owed})",
            reason="REPAYMENT_EXCEEDS_OWED",
            metadata={"owed": str(owed)},
        )
    return requested


class StatementLineKind(StrEnum):
    """What a statement line did to the amount owed."""

    PURCHASE = "purchase"
    REFUND = "refund"
    REPAYMENT = "repayment"


@dataclass(frozen=True)
class StatementMonth:
    """A calendar month in Tokyo time, with its bounds as UTC instants."""

    year: int
    month: int

    @property
    def label(self) -> str:
        """``YYYY-MM``."""
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        """Midnight of the 1st in Tokyo (inclusive)."""
        return datetime(self.year, self.month, 1, tzinfo=TOKYO).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """Midnight of the 1st of the next month in Tokyo (exclusive)."""
        return self.following().start

    @property
    def due_date(self) -> date:
        """The 27th of the following month."""
        following = self.following()
        return date(following.year, following.month, DUE_DAY)

    def following(self) -> StatementMonth:
        """The next calendar month."""
        return StatementMonth(self.year + 1, 1) if self.month == 12 else StatementMonth(self.year, self.month + 1)


def parse_month(value: str) -> StatementMonth:
    """``YYYY-MM`` (years 1970 to 9998) as a month; INVALID_ARGUMENT naming ``month`` otherwise."""
    found = _MONTH.match(value)
    if found is None or not 1970 <= int(found.group(1)) <= 9998:
        problems = Violations()
        problems.add("month", "must be a calendar month as YYYY-MM (1970-01 to 9998-12)")
        problems.raise_if_any()
    assert found is not None
    return StatementMonth(int(found.group(1)), int(found.group(2)))


@dataclass(frozen=True)
class CreditEntry:
    """One ledger entry on a credit account, with the kind of its transfer."""

    transfer_id: str
    transfer_kind: str
    amount: int
    description: str
    occurred_at: datetime


@dataclass(frozen=True)
class StatementLine:
    """A line of a statement; ``amount`` is positive (what it added to or took off the owed)."""

    kind: StatementLineKind
    transfer_id: str
    amount: int
    description: str
    occurred_at: datetime


@dataclass(frozen=True)
class CreditStatement:
    """One month of a credit line. ``closing_owed = opening_owed + purchases - refunds - repayments``;
    owed amounts are minus the credit balance (negative only if money came back beyond what was owed).
    """

    user_id: str
    currency: str
    month: str
    opening_owed: int
    purchases: int
    refunds: int
    repayments: int
    closing_owed: int
    due_date: date
    lines: tuple[StatementLine, ...]


def classify(entry: CreditEntry) -> StatementLine:
    """A purchase takes money from credit (a negative entry); money back onto the line is a
    repayment when its transfer is one of REPAYMENT_KINDS, a refund otherwise.
    """
    if entry.amount < 0:
        kind = StatementLineKind.PURCHASE
    elif entry.transfer_kind in REPAYMENT_KINDS:
        kind = StatementLineKind.REPAYMENT
    else:
        kind = StatementLineKind.REFUND
    return StatementLine(kind, entry.transfer_id, abs(entry.amount), entry.description, entry.occurred_at)


def build_statement(
    user_id: str, currency: str, month: StatementMonth, opening_balance: int, entries: Iterable[CreditEntry]
) -> CreditStatement:
    """The statement of ``month`` from the balance at its start and its entries (in order)."""
    lines = tuple(classify(e) for e in entries)
    totals = {kind: sum(line.amount for line in lines if line.kind is kind) for kind in StatementLineKind}
    opening = -opening_balance
    purchases = totals[StatementLineKind.PURCHASE]
    refunds = totals[StatementLineKind.REFUND]
    repayments = totals[StatementLineKind.REPAYMENT]
    return CreditStatement(
        user_id=user_id,
        currency=currency,
        month=month.label,
        opening_owed=opening,
        purchases=purchases,
        refunds=refunds,
        repayments=repayments,
        closing_owed=opening + purchases - refunds - repayments,
        due_date=month.due_date,
        lines=lines,
    )
