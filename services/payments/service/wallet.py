"""Reading a wallet: balances per bucket, unspent points lots, the history."""

from __future__ import annotations

from dataclasses import dataclass

from libs.clock import Clock
from libs.storage import Database
from services.payments.domain.accounts import USER_KINDS, AccountKind
from services.payments.domain.points import PointsLot
from services.payments.store import accounts as accounts_repo
from services.payments.store import frozen as frozen_repo
from services.payments.store import ledger as ledger_repo
from services.payments.store import points as points_repo
from services.payments.store.ledger import HistoryLine


@dataclass(frozen=True)
class BucketBalance:
    """The balance of one bucket in one currency."""

    kind: AccountKind
    currency: str
    balance: int


@dataclass(frozen=True)
class WalletBalance:
    """A user's buckets and unspent points lots, read in one snapshot."""

    user_id: str
    balances: tuple[BucketBalance, ...]
    points_lots: tuple[PointsLot, ...]
    frozen: bool = False
    """Trust & Safety has the owner suspended: no money goes out."""


class Wallet:
    """Read-only views of users' wallets."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def balance(self, user_id: str) -> WalletBalance:
        """Every bucket the user has an account in, and their unexpired points lots."""
        async with self._db.read() as conn:
            owned = await accounts_repo.owned_by(conn, user_id)
            lots = await points_repo.unspent(conn, user_id, self._clock.now())
            frozen = bool(await conn.run_sync(frozen_repo.frozen_among, [user_id]))
        balances = tuple(BucketBalance(a.kind, a.currency, b) for a, b in owned if a.kind in USER_KINDS)
        return WalletBalance(user_id, balances, tuple(lots), frozen)

    async def history(self, user_id: str, before: int | None, limit: int) -> list[HistoryLine]:
        """The user's entries, newest first, older than entry ``before`` when given."""
        async with self._db.read() as conn:
            return await ledger_repo.history(conn, user_id, before, limit)
