"""Accounts: who owns money in which bucket, and how low each kind of balance may go."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PLATFORM = "platform"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class AccountKind(StrEnum):
    """The kind of an account: a user's bucket, or one of the platform's books."""

    CASH = "cash"
    POINTS = "points"
    SALES = "sales"
    CREDIT = "credit"
    BANK_CLEARING = "bank_clearing"
    ESCROW = "escrow"
    FEE_REVENUE = "fee_revenue"
    POINTS_BUDGET = "points_budget"
    CREDIT_RECEIVABLE = "credit_receivable"


# A user's buckets: what they own (or, for credit, owe) on the platform.
USER_KINDS = frozenset({AccountKind.CASH, AccountKind.POINTS, AccountKind.SALES, AccountKind.CREDIT})


@dataclass(frozen=True)
class Account:
    """One ledger account. ``floor`` is the lowest balance allowed; None means unbounded
    (the platform's own books are the counter-side of every user balance, so they go negative).
    """

    account_id: str
    owner: str
    kind: AccountKind
    currency: str
    floor: int | None


def is_currency(code: str) -> bool:
    """Whether ``code`` looks like an ISO 4217 code (three upper-case letters)."""
    return bool(_CURRENCY.match(code))


def account_id(owner: str, kind: AccountKind, currency: str) -> str:
    """The deterministic id of an owner's account of a kind and currency (``usr_1/cash/JPY``)."""
    return f"{owner}/{kind.value}/{currency}"


def floor_for(kind: AccountKind, credit_limit: int = 0) -> int | None:
    """The balance floor of an account kind: zero for a user's own money, minus the limit
    for credit, none for the platform's books.
    """
    if kind is AccountKind.CREDIT:
        if credit_limit < 0:
            raise ValueError("a credit limit is not negative")
        return -credit_limit
    return 0 if kind in USER_KINDS else None


def user_account(user_id: str, kind: AccountKind, currency: str, credit_limit: int = 0) -> Account:
    """A user's account in one bucket."""
    if kind not in USER_KINDS:
        raise ValueError(f"{kind} is not a user bucket")
    return Account(account_id(user_id, kind, currency), user_id, kind, currency, floor_for(kind, credit_limit))


def platform_account(kind: AccountKind, currency: str, owner: str = PLATFORM) -> Account:
    """One of the platform's books (``owner`` names a campaign for a points budget)."""
    if kind in USER_KINDS:
        raise ValueError(f"{kind} is a user bucket")
    return Account(account_id(owner, kind, currency), owner, kind, currency, floor_for(kind))


def allows(floor: int | None, balance: int) -> bool:
    """Whether ``balance`` respects ``floor``."""
    return floor is None or balance >= floor
