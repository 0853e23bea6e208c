"""Background work repeated every few seconds in a service process (sweeps, queues,
clocks): one task, failures logged and retried next round, stopped cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("furima.periodic")


class Periodic:
    """Runs ``work()`` every ``interval`` seconds between `start` and `stop`; ``pause``
    (default `asyncio.sleep`) may return early to run the next round sooner, for example
    `Outbox.wait`, which returns when a transaction committed new work.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[object]],
        *,
        pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self._work = work
        self._pause = pause
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the rounds are scheduled."""
        return self._task is not None and not self._task.done()

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                await self._work()
            except Exception as exc:  # noqa: BLE001 — the next round retries
                log.warning("periodic work failed", work=self.name, error=str(exc))
            await self._pause(interval)

    def start(self, interval: float) -> None:
        """Run a round now and then every ``interval`` seconds."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.create_task(self._loop(interval), name=self.name)

    async def stop(self) -> None:
        """Stop the rounds (a round in progress is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
