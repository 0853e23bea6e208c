"""Keeps a `DenyList` current from the ID service's event stream."""

from __future__ import annotations

import asyncio
import contextlib

from furima.events.v1 import events_pb2

from libs.auth._denylist import DENYLIST_EVENT_TYPES, DenyList
from libs.errors import Unavailable
from libs.events import EventSource, follow_events


class DenyListFeeder:
    """Replays the ID stream's revocation events into a deny-list, then follows it live."""

    def __init__(self, denylist: DenyList, source: EventSource) -> None:
        self.denylist = denylist
        self.source = source
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, catch_up_timeout: float = 10.0) -> None:
        """Start following and wait until past events are applied, so a restarted service
        never accepts a suspended user's token. Fails closed: if the history cannot be read
        in time the service must not serve (raises `Unavailable`).
        """
        self._task = asyncio.create_task(
            follow_events(self.source, DENYLIST_EVENT_TYPES, self._cursor, self._handle, caught_up=self.caught_up),
            name="denylist-feeder",
        )
        try:
            async with asyncio.timeout(catch_up_timeout):
                await self.caught_up.wait()
        except TimeoutError:
            await self.stop()
            raise Unavailable("could not read the ID event stream to build the deny-list") from None

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _cursor(self) -> int:
        return self.denylist.position

    async def _handle(self, event: events_pb2.Event) -> None:
        self.denylist.apply(event)
