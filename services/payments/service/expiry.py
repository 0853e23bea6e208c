"""The points expiry sweep: the unspent rest of an expired lot goes back to the budget
of the campaign that granted it, one lot per transaction, with its event.
"""

from __future__ import annotations

from libs.clock import Clock
from libs.events import Outbox
from libs.storage import Database
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.points import PointsLot
from services.payments.domain.transfers import POINTS_EXPIRY, Leg, TransferDraft
from services.payments.service._events import points_expired
from services.payments.service.ledger import Ledger
from services.payments.service.points import budget_owner
from services.payments.store import points as points_repo


class PointsExpiry:
    """Sweeps expired points; safe to run in several processes at once."""

    def __init__(self, db: Database, ledger: Ledger, outbox: Outbox, clock: Clock) -> None:
        self._db = db
        self._ledger = ledger
        self._outbox = outbox
        self._clock = clock

    async def sweep_once(self, limit: int = 500) -> int:
        """Expire what is due now; returns how many lots were expired."""
        async with self._db.read() as conn:
            due = await points_repo.expired(conn, self._clock.now(), limit)
        return sum([await self._expire(lot) for lot in due])

    async def _expire(self, lot: PointsLot) -> bool:
        budget = platform_account(AccountKind.POINTS_BUDGET, lot.currency, owner=budget_owner(lot.campaign_id))
        points = user_account(lot.user_id, AccountKind.POINTS, lot.currency)
        draft = TransferDraft(
            POINTS_EXPIRY,
            (Leg(points, -lot.remaining), Leg(budget, lot.remaining)),
            f"points of lot {lot.lot_id} expired",
        )
        async with self._db.transaction() as tx:
            # The guard makes a concurrent sweep (or spend) lose cleanly: one moves the points.
            if not await points_repo.take_remaining(tx.conn, lot.lot_id, lot.remaining):
                return False
            posted = await self._ledger.post_transfer(tx, draft)
            await self._outbox.append(tx, lot.user_id, points_expired(lot, posted.transfer_id, posted.posted_at))
        return True
