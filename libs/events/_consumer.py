"""Consuming another service's events: catch up, follow, reconnect, never skip.

`follow_events` is the loop every consumer shares. `DurableConsumer` adds a cursor and a
record of processed event ids in the consumer's own database, written in the same
transaction as the handler's effects: delivery is at-least-once, the effect once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog
from furima.events.v1 import events_pb2
from sqlalchemy import Column, Connection, MetaData, String, Table, bindparam, insert, select, update

from libs.events._source import EventSource
from libs.storage import Database, Transaction, UtcDateTime, big_id

log = structlog.get_logger("furima.events")

Handler = Callable[[events_pb2.Event], Awaitable[None]]


async def follow_events(
    source: EventSource,
    types: Sequence[str],
    cursor: Callable[[], Awaitable[int]],
    handle: Handler,
    *,
    caught_up: asyncio.Event | None = None,
    min_backoff: float = 0.2,
    max_backoff: float = 5.0,
) -> None:
    """Deliver events to ``handle`` forever, in order, resuming from ``cursor()`` after
    any failure. ``caught_up`` is set once the history that existed at start is handled.
    """
    backoff = min_backoff
    while True:
        try:
            if caught_up is not None and not caught_up.is_set():
                async for event in source.stream(await cursor(), types, follow=False):
                    await handle(event)
                caught_up.set()
            async for event in source.stream(await cursor(), types, follow=True):
                await handle(event)
                backoff = min_backoff
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — the producer may be down; retry with backoff
            log.warning("event_stream_interrupted", error=str(exc), retry_in=backoff)
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)


def consumer_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Declare ``event_cursors`` and ``processed_events`` in a consumer's metadata."""
    cursors = Table(
        "event_cursors",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("position", big_id(), nullable=False),
    )
    processed = Table(
        "processed_events",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(40), primary_key=True),
        Column("processed_at", UtcDateTime(), nullable=False),
    )
    return cursors, processed


TxHandler = Callable[[Transaction, events_pb2.Event], Awaitable[None]]


class DurableConsumer:
    """Applies a producer's events to this service's database exactly once each."""

    def __init__(
        self,
        name: str,
        source: EventSource,
        db: Database,
        tables: tuple[Table, Table],
        handler: TxHandler,
        types: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.source = source
        self.db = db
        self.cursors, self.processed = tables
        self.handler = handler
        self.types = list(types)
        # Built once: the synchronous bookkeeping runs for every batch.
        c, p = self.cursors.c, self.processed.c
        self._processed_among = select(p.event_id).where(
            p.consumer == self.name, p.event_id.in_(bindparam("event_ids", expanding=True))
        )
        self._advance = (
            update(self.cursors)
            .where(c.consumer == self.name, c.position < bindparam("sequence"))
            .values(position=bindparam("sequence"))
        )
        self._position = select(c.position).where(c.consumer == self.name)
        self._mark = insert(self.processed)

    async def position(self) -> int:
        """The sequence of the last event applied."""
        async with self.db.read() as conn:
            value = await conn.scalar(select(self.cursors.c.position).where(self.cursors.c.consumer == self.name))
        return int(value or 0)

    async def apply(self, event: events_pb2.Event) -> bool:
        """Apply one event with its cursor move in one transaction; False if seen before."""
        async with self.db.transaction() as tx:
            seen = await tx.conn.scalar(
                select(self.processed.c.event_id).where(
                    self.processed.c.consumer == self.name, self.processed.c.event_id == event.id
                )
            )
            moved = await tx.conn.execute(
                update(self.cursors)
                .where(self.cursors.c.consumer == self.name, self.cursors.c.position < event.sequence)
                .values(position=event.sequence)
            )
            if moved.rowcount == 0:
                exists = await tx.conn.scalar(
                    select(self.cursors.c.position).where(self.cursors.c.consumer == self.name)
                )
                if exists is None:
                    await tx.conn.execute(insert(self.cursors).values(consumer=self.name, position=event.sequence))
            if seen is not None:
                return False
            await self.handler(tx, event)
            await tx.conn.execute(
                insert(self.processed).values(consumer=self.name, event_id=event.id, processed_at=datetime.now(UTC))
            )
        return True

    # Synchronous forms of the bookkeeping, for a consumer that applies a batch of events
    # in one `Database.write_sync` transaction.

    def processed_among(self, conn: Connection, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` this consumer applied already."""
        return {row.event_id for row in conn.execute(self._processed_among, {"event_ids": list(event_ids)})}

    def advance(self, conn: Connection, sequence: int) -> None:
        """Move the cursor forward to ``sequence`` (never back)."""
        moved = conn.execute(self._advance, {"sequence": sequence})
        if moved.rowcount == 0 and conn.scalar(self._position) is None:
            conn.execute(insert(self.cursors).values(consumer=self.name, position=sequence))

    def mark_processed(self, conn: Connection, event_ids: Sequence[str]) -> None:
        """Record ``event_ids`` as applied (in the transaction of their effects)."""
        now = datetime.now(UTC)
        rows = [{"consumer": self.name, "event_id": event_id, "processed_at": now} for event_id in event_ids]
        if rows:
            conn.execute(self._mark, rows)

    async def apply_batch(self, events: Sequence[events_pb2.Event]) -> int:
        """Apply events in stream order; returns how many were new. This applies each in
        a transaction of its own (`apply`); a consumer that can apply several in one
        transaction overrides it (`run` hands over whatever arrived meanwhile).
        """
        applied = 0
        for event in events:
            applied += await self.apply(event)
        return applied

    async def drain(self) -> int:
        """Apply every event available now; returns how many were new (tests, jobs)."""
        applied = 0
        async for event in self.source.stream(await self.position(), self.types, follow=False):
            applied += await self.apply(event)
        return applied

    async def run(self, *, batch: int = 200, retry_after: float = 0.2, linger: float = 0.0) -> None:
        """Follow the producer forever (cancel the task to stop).

        The stream is read ahead into a queue and applied in batches of what arrived
        meanwhile, up to ``batch`` (`apply_batch`): under load one transaction covers many
        events. With ``linger`` a batch waits up to that many seconds after its first
        event for more (events that trickle in one by one still share transactions, at
        the cost of that delay). An event read again after a reconnect, or queued twice,
        is recognised by its id and skipped. A batch that fails is tried again after
        ``retry_after`` seconds (doubling up to 5 s), so nothing is skipped.
        """
        queue: asyncio.Queue[events_pb2.Event] = asyncio.Queue(maxsize=batch * 4)

        async def next_batch() -> list[events_pb2.Event]:
            events = [await queue.get()]
            if linger > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(linger):
                        while len(events) < batch:
                            events.append(await queue.get())
            while len(events) < batch and not queue.empty():
                events.append(queue.get_nowait())
            return events

        async def apply_forever() -> None:
            while True:
                events = await next_batch()
                backoff = retry_after
                while True:
                    try:
                        await self.apply_batch(events)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # noqa: BLE001 — a failed transaction is retried, never skipped
                        log.warning("event_batch_failed", consumer=self.name, error=str(exc), retry_in=backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(5.0, backoff * 2)

        applier = asyncio.create_task(apply_forever(), name=f"{self.name}-apply")
        try:
            await follow_events(self.source, self.types, self.position, queue.put)
        finally:
            applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applier
