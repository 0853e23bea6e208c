"""Periodic housekeeping of a payments process: expire points, release payment holds
that were not captured in time, forget idempotency keys past their retention. All are
safe to run in several processes at once.
"""

from __future__ import annotations

import structlog

from libs.periodic import Periodic
from services.payments.service.expiry import PointsExpiry
from services.payments.service.idempotency import IdempotentCalls
from services.payments.service.payments import Payments

log = structlog.get_logger("furima.payments.housekeeping")


class Housekeeping:
    """Runs the sweeps every ``interval`` seconds in the background."""

    def __init__(self, expiry: PointsExpiry, calls: IdempotentCalls, payments: Payments) -> None:
        self._expiry = expiry
        self._calls = calls
        self._payments = payments
        self._rounds = Periodic("payments-housekeeping", self._round)

    async def run_once(self) -> tuple[int, int, int]:
        """One round: ``(lots expired, holds expired, idempotency keys forgotten)``."""
        lots = await self._expiry.sweep_once()
        holds = await self._payments.expire_holds()
        return lots, holds, await self._calls.purge_expired()

    async def _round(self) -> None:
        lots, holds, purged = await self.run_once()
        if lots or holds or purged:
            log.info("housekeeping", points_lots_expired=lots, holds_expired=holds, idempotency_keys_purged=purged)

    def start(self, interval: float) -> None:
        """Run a round every ``interval`` seconds until `stop`."""
        self._rounds.start(interval)

    async def stop(self) -> None:
        """Stop the rounds."""
        await self._rounds.stop()
