"""Periodic housekeeping of a payments process: expire points, forget idempotency keys
past their retention. Both are safe to run in several processes at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from services.payments.service.expiry import PointsExpiry
from services.payments.service.idempotency import IdempotentCalls

log = structlog.get_logger("furima.payments.housekeeping")


class Housekeeping:
    """Runs the sweeps every ``interval`` seconds in the background."""

    def __init__(self, expiry: PointsExpiry, calls: IdempotentCalls) -> None:
        self._expiry = expiry
        self._calls = calls
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> tuple[int, int]:
        """One round: ``(lots expired, idempotency keys forgotten)``."""
        return await self._expiry.sweep_once(), await self._calls.purge_expired()

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                expired, purged = await self.run_once()
                if expired or purged:
                    log.info("housekeeping", points_lots_expired=expired, idempotency_keys_purged=purged)
            except Exception as exc:  # noqa: BLE001 — the next round retries
                log.warning("housekeeping failed", error=str(exc))
            await asyncio.sleep(interval)

    def start(self, interval: float) -> None:
        """Run a round every ``interval`` seconds until `stop`."""
        self._task = asyncio.create_task(self._loop(interval), name="payments-housekeeping")

    async def stop(self) -> None:
        """Stop the rounds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
