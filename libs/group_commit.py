"""Group commit: requests that arrive while a write transaction runs share the next one.

A service whose writes are serialised (one SQLite writer) or that pays a fixed cost per
transaction (locks, reads of shared state, the commit) does better running many small
requests in one transaction than one after another. `GroupCommit` queues requests;
one drainer at a time takes everything queued (up to a size) and runs it as a group.
An idle service is not delayed: the first request starts a group at once, and only
requests arriving while it runs wait, for the next one.

A group is all or nothing, but its requests are not: when a group fails for any reason
(one request's bad input, a conflict, a bug), every request of it is run again on its
own, so each caller gets exactly the answer or error it would have had alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")


@dataclass
class _Waiting(Generic[R, T]):
    request: R
    size: int
    answer: asyncio.Future[T] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[R, T]):
    """Runs queued requests in groups: ``run_group`` for several (one result per request,
    in order), ``run_one`` for a request alone (a group of one, or after a group failed).
    After each group the drainer yields to the event loop ``settle`` times, so requests
    whose handlers were held up by a transaction running on the loop join the next group.
    """

    def __init__(
        self,
        run_group: Callable[[Sequence[R]], Awaitable[Sequence[T]]],
        run_one: Callable[[R], Awaitable[T]],
        *,
        max_size: int,
        settle: int = 8,
    ) -> None:
        self._run_group = run_group
        self._run_one = run_one
        self._max_size = max_size
        self._settle = settle
        self._queue: list[_Waiting[R, T]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, request: R, size: int = 1) -> T:
        """Run ``request`` (of ``size`` units towards a group's ``max_size``) in the next
        group; returns its result or raises its error.
        """
        waiting: _Waiting[R, T] = _Waiting(request, size)
        self._queue.append(waiting)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="group-commit")
        # Shielded: a caller giving up does not cancel the group the others wait on.
        return await asyncio.shield(waiting.answer)

    async def _drain(self) -> None:
        group: list[_Waiting[R, T]] = []
        try:
            while self._queue:
                group = self._take()
                await self._run(group)
                # A synchronous transaction keeps the event loop busy: let the requests that
                # arrived meanwhile reach `submit` before looking at the queue again.
                for _ in range(self._settle):
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            # Shutting down: nobody will run what is left.
            for waiting in group + self._queue:
                waiting.answer.cancel()
            self._queue = []
            raise

    async def _run(self, group: list[_Waiting[R, T]]) -> None:
        if len(group) == 1:
            await self._alone(group[0])
            return
        try:
            results = await self._run_group([w.request for w in group])
        except Exception:  # noqa: BLE001 — each request is run again alone and gets its own answer
            for waiting in group:
                await self._alone(waiting)
            return
        for waiting, result in zip(group, results, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(result)

    def _take(self) -> list[_Waiting[R, T]]:
        """The longest prefix of the queue within ``max_size`` (at least one request)."""
        taken, total = 0, 0
        while taken < len(self._queue) and (taken == 0 or total + self._queue[taken].size <= self._max_size):
            total += self._queue[taken].size
            taken += 1
        group, self._queue = self._queue[:taken], self._queue[taken:]
        return group

    async def _alone(self, waiting: _Waiting[R, T]) -> None:
        try:
            result = await self._run_one(waiting.request)
        except Exception as exc:  # noqa: BLE001 — the caller's error, handed to the caller
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)
            return
        if not waiting.answer.done():
            waiting.answer.set_result(result)
