"""Accounts: who owns money in which bucket, and how low each kind of balance may go."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from enum import StrEnum

from libs.errors import Violations

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
    # Funds held for a payment or a withdrawal until they are captured, paid out or released.
    HOLDS = "holds"
    # What the external card provider owes the platform for card-funded payments.
    CARD_CLEARING = "card_clearing"


# Platform books every payment touches: split into shards (one row each), so concurrent
# payments do not queue on one row lock. Their balance is the sum of the shards.
SHARDED_KINDS = frozenset({AccountKind.HOLDS, AccountKind.ESCROW, AccountKind.FEE_REVENUE})
PLATFORM_SHARDS = 16

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


USER_ID_MAX = 64


def check_user_id(problems: Violations, user_id: str, path: str = "user_id") -> bool:
    """Whether ``user_id`` is a user id (``usr_...``, at most `USER_ID_MAX` characters;
    only users own wallets); a violation on ``path`` when it is not.
    """
    if user_id.startswith("usr_") and len(user_id) <= USER_ID_MAX:
        return True
    problems.add(path, f"must be a user id (usr_..., at most {USER_ID_MAX} characters)")
    return False


def is_currency(code: str) -> bool:
    """Whether ``code`` looks like an ISO 4217 code (three upper-case letters)."""
    return bool(_CURRENCY.match(code))


def account_id(owner: str, kind: AccountKind, currency: str, shard: int | None = None) -> str:
    """The deterministic id of an owner's account of a kind and currency (``usr_1/cash/JPY``;
    a shard of a hot platform book: ``platform/escrow/JPY/7``).
    """
    base = f"{owner}/{kind.value}/{currency}"
    return base if shard is None else f"{base}/{shard}"


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


def platform_account(kind: AccountKind, currency: str, owner: str = PLATFORM, shard: int | None = None) -> Account:
    """One of the platform's books (``owner`` names a campaign for a points budget); the
    books in SHARDED_KINDS need a ``shard`` in ``range(PLATFORM_SHARDS)``.
    """
    if kind in USER_KINDS:
        raise ValueError(f"{kind} is a user bucket")
    if (shard is not None) != (kind in SHARDED_KINDS):
        raise ValueError(f"{kind} {'needs' if kind in SHARDED_KINDS else 'takes no'} shard")
    if shard is not None and not 0 <= shard < PLATFORM_SHARDS:
        raise ValueError(f"shard {shard} is out of range")
    return Account(account_id(owner, kind, currency, shard), owner, kind, currency, floor_for(kind))


def shard_of(key: str) -> int:
    """The shard of the hot platform books a payment (or withdrawal) uses, from its id."""
    return zlib.crc32(key.encode()) % PLATFORM_SHARDS


def allows(floor: int | None, balance: int) -> bool:
    """Whether ``balance`` respects ``floor``."""
    return floor is None or balance >= floor
