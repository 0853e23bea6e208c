"""Consuming another service's events: catch up, follow, reconnect, never skip.

`follow_events` is the loop every consumer shares. `DurableConsumer` adds a cursor and a
record of processed event ids in the consumer's own database, written in the same
transaction as the handler's effects: delivery is at-least-once, the effect once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog
from furima.events.v1 import events_pb2
from sqlalchemy import Column, MetaData, String, Table, insert, select, update

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

    async def drain(self) -> int:
        """Apply every event available now; returns how many were new (tests, jobs)."""
        applied = 0
        async for event in self.source.stream(await self.position(), self.types, follow=False):
            applied += await self.apply(event)
        return applied

    async def run(self) -> None:
        """Follow the producer forever (cancel the task to stop)."""

        async def handle(event: events_pb2.Event) -> None:
            await self.apply(event)

        await follow_events(self.source, self.types, self.position, handle)
