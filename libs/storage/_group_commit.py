"""Group commit: concurrent small writes share one transaction.

A request whose only write is a few rows (an audit entry, a moderation decision, a
tracked event) would, in its own transaction, cap the service at the database's commit
rate and pay every per-transaction cost alone. Instead callers queue their items and
one drainer task at a time takes everything queued so far (up to a size) and runs it
as a group, while each caller waits for its own answer. An idle service is not
delayed: the first item starts a group at once; items arriving while it runs wait for
the next one. Nothing is answered before its group committed.

`Grouped` is the queue: a group's function returns one result per item, and when a
group fails each item can be run again on its own (``run_one``), so every caller gets
exactly the answer or error it would have had alone; without ``run_one`` a failed group
fails all its callers. `GroupCommit` is the common case on top of it: items written by
``write_many`` in a shared transaction (or by ``commit``, which runs its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from libs.storage._database import Database, Transaction

# For ``linger``: a group of several taken this recently means the service is busy.
BUSY_SPELL_S = 0.1

T = TypeVar("T")
R = TypeVar("R")

WriteMany = Callable[[Transaction, Sequence[T]], Awaitable[None]]
Commit = Callable[[Sequence[T]], Awaitable[None]]


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    size: int
    answer: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Grouped(Generic[T, R]):
    """Runs queued items in groups: ``run_group`` for several (one result per item, in
    order), ``run_one`` for an item alone (a group of one, or each item of a failed
    group). A group holds at most ``max_size`` units (`submit`'s ``size``; an item larger
    than that runs alone). Before taking a group the drainer sleeps ``gather`` seconds
    (when commits are cheap, so requests already on their way join), and after each
    group it yields to the event loop ``settle`` times (when a group runs synchronously
    on the loop, so requests whose handlers it held up reach the queue first). Groups
    run one at a time unless ``parallel`` says more may (a new group then starts while
    the others run, when items wait and every running drainer is busy).

    ``linger`` is ``gather`` for a service that must not slow a lone caller: the drainer
    waits up to that long for more items only when more are likely. That is when the
    queue shows load (it holds more than one item, or the last group did, less than
    `BUSY_SPELL_S` ago), and then it waits the whole time unless the group fills. Or,
    when only ``in_flight`` says so
    (how many callers are between their start and their answer, queued and grouped ones
    included), until every one of them has queued.
    """

    def __init__(
        self,
        run_group: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        run_one: Callable[[T], Awaitable[R]] | None = None,
        *,
        max_size: int = 500,
        gather: float = 0.0,
        linger: float = 0.0,
        in_flight: Callable[[], int] | None = None,
        settle: int = 0,
        parallel: Callable[[], int] = lambda: 1,
        name: str = "group-commit",
    ) -> None:
        self._run_group = run_group
        self._run_one = run_one
        self._max_size = max_size
        self._gather = gather
        self._linger = linger
        self._in_flight = in_flight
        self._settle = settle
        self._parallel = parallel
        self._name = name
        self._queue: list[_Waiting[T, R]] = []
        self._queued_units = 0
        self._grouped_items = 0  # in groups running now
        self._last_group = 0
        self._last_group_at = 0.0  # loop time it was taken
        # Drainers lingering, each with whether only callers counted in flight keep it.
        self._lingering: list[tuple[asyncio.Future[None], bool]] = []
        self._drainers: set[asyncio.Task[None]] = set()
        self._busy = 0

    async def submit(self, item: T, size: int = 1) -> R:
        """Run ``item`` in the next group; returns its result or raises its error."""
        waiting: _Waiting[T, R] = _Waiting(item, size)
        self._queue.append(waiting)
        self._queued_units += size
        if self._lingering:
            full, coming = self._queued_units >= self._max_size, self._counted_coming()
            for waiter, for_counted in self._lingering:
                if full or (for_counted and not coming):
                    _wake(waiter)
        # A drainer between groups takes it; while each runs a group, up to ``parallel()``
        # groups run at once (asked at each start: it may change with the load).
        running = self._running()
        if running == self._busy and running < max(1, self._parallel()):
            drainer = asyncio.create_task(self._drain(), name=self._name)
            self._drainers.add(drainer)
            drainer.add_done_callback(self._drainers.discard)
        # Shielded: a caller giving up does not cancel the group the others wait on.
        return await asyncio.shield(waiting.answer)

    def _running(self) -> int:
        # A drainer whose loop ended is done at once; its set entry goes a moment later.
        return sum(not d.done() for d in self._drainers)

    async def _drain(self) -> None:
        group: list[_Waiting[T, R]] = []
        try:
            while self._queue:
                if self._running() > max(1, self._parallel()):
                    break  # fewer groups at once now: the others take the queue
                if self._gather:
                    await asyncio.sleep(self._gather)
                elif self._linger:
                    await self._wait_for_others()
                if not self._queue:
                    break  # another drainer took them
                group = self._take()
                self._busy += 1
                self._grouped_items += len(group)
                try:
                    await self._run(group)
                finally:
                    self._busy -= 1
                    self._grouped_items -= len(group)
                group = []
                for _ in range(self._settle):
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            # Shutting down: nobody will run what is left.
            for waiting in group + self._queue:
                waiting.answer.cancel()
            self._queue = []
            self._queued_units = 0
            raise

    def _counted_coming(self) -> bool:
        """Whether callers counted by ``in_flight`` have not queued yet."""
        if self._in_flight is None:
            return False
        return self._in_flight() > len(self._queue) + self._grouped_items

    async def _wait_for_others(self) -> None:
        """``linger``: wait for more items while the queue shows load (it holds more than
        one, or the last group did: requests this process has not started on are likely
        arriving too), or until the callers counted in flight have queued; never past a
        full group, never for a lone caller on an idle service.
        """
        if self._queued_units >= self._max_size:
            return
        loop = asyncio.get_running_loop()
        recently = loop.time() - self._last_group_at < BUSY_SPELL_S
        busy = len(self._queue) > 1 or (self._last_group > 1 and recently)
        if not busy and not self._counted_coming():
            return
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (waiter, not busy)
        self._lingering.append(entry)
        timer = loop.call_later(self._linger, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._lingering.remove(entry)

    def _take(self) -> list[_Waiting[T, R]]:
        """The longest prefix of the queue within ``max_size`` (at least one item)."""
        taken, total = 0, 0
        while taken < len(self._queue) and (taken == 0 or total + self._queue[taken].size <= self._max_size):
            total += self._queue[taken].size
            taken += 1
        group, self._queue = self._queue[:taken], self._queue[taken:]
        self._queued_units -= total
        self._last_group = taken
        self._last_group_at = asyncio.get_running_loop().time()
        return group

    async def _run(self, group: list[_Waiting[T, R]]) -> None:
        if len(group) == 1 and self._run_one is not None:
            await self._alone(group[0], self._run_one)
            return
        try:
            results = await self._run_group([w.item for w in group])
        except Exception as exc:  # noqa: BLE001 — handed to the callers, or each item retried alone
            run_one = self._run_one
            for waiting in group:
                if run_one is not None:
                    await self._alone(waiting, run_one)
                elif not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        for waiting, result in zip(group, results, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(result)

    @staticmethod
    async def _alone(waiting: _Waiting[T, R], run_one: Callable[[T], Awaitable[R]]) -> None:
        try:
            result = await run_one(waiting.item)
        except Exception as exc:  # noqa: BLE001 — the caller's error, handed to the caller
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)
            return
        if not waiting.answer.done():
            waiting.answer.set_result(result)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class GroupCommit(Generic[T]):
    """Writes items with ``write_many`` in shared transactions, or hands each batch to
    ``commit``, which runs its own transaction (see `Database.write_sync`). With
    ``gather`` the writer waits that many seconds before taking a batch, so that requests
    already on their way share it (when a commit is cheap, batches would otherwise stay
    tiny and the per-commit cost would dominate); with ``linger`` it waits only while the
    queue shows load (see `Grouped`). A failed batch fails every caller in it.
    """

    def __init__(
        self,
        db: Database,
        write_many: WriteMany[T] | None = None,
        *,
        commit: Commit[T] | None = None,
        max_batch: int = 500,
        gather: float = 0.0,
        linger: float = 0.0,
        name: str = "group-commit",
    ) -> None:
        if (write_many is None) == (commit is None):
            raise TypeError("give exactly one of write_many and commit")
        self._db = db
        self._write_many = write_many
        self._commit = commit
        self._name = name
        self._grouped: Grouped[T, None] = Grouped(
            self._commit_batch, max_size=max_batch, gather=gather, linger=linger, name=name
        )

    async def write(self, item: T) -> None:
        """Return once ``item`` is committed (raises if its batch failed to commit)."""
        if self._db.in_transaction():
            # The batch needs the writer this task holds: it would wait forever.
            raise RuntimeError(f"{self._name}: write() inside a transaction would wait for itself")
        await self._grouped.submit(item)

    async def _commit_batch(self, items: Sequence[T]) -> list[None]:
        if self._commit is not None:
            await self._commit(items)
        else:
            assert self._write_many is not None
            async with self._db.transaction() as tx:
                await self._write_many(tx, items)
        return [None] * len(items)
