"""Group commit: concurrent small writes share one transaction.

A request whose only write is a few rows (an audit entry, a moderation decision) would,
in its own transaction, cap the service at the database's commit rate. Instead the
callers hand their items to one writer task, which commits everything queued so far in
one transaction while each caller waits for that commit. Nothing is acknowledged before
it is durable; a failed batch fails every caller in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from libs.storage._database import Database, Transaction

T = TypeVar("T")

WriteMany = Callable[[Transaction, Sequence[T]], Awaitable[None]]
Commit = Callable[[Sequence[T]], Awaitable[None]]


class GroupCommit(Generic[T]):
    """Writes items with ``write_many`` in shared transactions, or hands each batch to
    ``commit``, which runs its own transaction (see `Database.write_sync`). With
    ``gather`` the writer waits that many seconds before taking a batch, so that requests
    already on their way share it (when a commit is cheap, batches would otherwise stay
    tiny and the per-commit cost would dominate).
    """

    def __init__(
        self,
        db: Database,
        write_many: WriteMany[T] | None = None,
        *,
        commit: Commit[T] | None = None,
        max_batch: int = 500,
        gather: float = 0.0,
        name: str = "group-commit",
    ) -> None:
        if (write_many is None) == (commit is None):
            raise TypeError("give exactly one of write_many and commit")
        self._db = db
        self._write_many = write_many
        self._commit = commit
        self._gather = gather
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, item: T) -> None:
        """Return once ``item`` is committed (raises if its batch failed to commit)."""
        if self._db.in_transaction():
            # The batch needs the writer this task holds: it would wait forever.
            raise RuntimeError(f"{self._name}: write() inside a transaction would wait for itself")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name=self._name)
        await done

    async def _drain(self) -> None:
        while self._pending:
            if self._gather:
                # Let the requests already on their way join this batch.
                await asyncio.sleep(self._gather)
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                await self._commit_batch([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 — every waiter of the batch gets the failure
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _commit_batch(self, items: list[T]) -> None:
        if self._commit is not None:
            await self._commit(items)
            return
        assert self._write_many is not None
        async with self._db.transaction() as tx:
            await self._write_many(tx, items)
