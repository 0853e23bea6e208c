"""Where consumers read events from: the local outbox, or another service over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import grpc
from furima.events.v1 import events_pb2, events_pb2_grpc
from google.protobuf import any_pb2, timestamp_pb2

from libs.events._outbox import Outbox, StoredEvent
from libs.storage import Database


class EventSource(Protocol):
    """An ordered stream of one producer's events after a cursor."""

    def stream(self, after: int, types: Sequence[str], follow: bool) -> AsyncIterator[events_pb2.Event]:
        """Events with ``sequence > after``; with ``follow``, never ends on its own."""
        ...


def to_proto(event: StoredEvent, source: str) -> events_pb2.Event:
    """The wire form of a stored event."""
    occurred = timestamp_pb2.Timestamp()
    occurred.FromDatetime(event.occurred_at)
    return events_pb2.Event(
        id=event.event_id,
        sequence=event.sequence,
        type=event.type,
        aggregate_id=event.aggregate_id,
        occurred_at=occurred,
        payload=any_pb2.Any(type_url=f"type.googleapis.com/{event.type}", value=event.payload),
        source=source,
    )


class OutboxEventSource:
    """Reads a service's own outbox (in-process consumers, and the stream servicer)."""

    def __init__(self, db: Database, outbox: Outbox, source: str, *, poll_interval: float = 0.5) -> None:
        self.db = db
        self.outbox = outbox
        self.source = source
        self.poll_interval = poll_interval

    async def stream(self, after: int, types: Sequence[str], follow: bool) -> AsyncIterator[events_pb2.Event]:
        """Events after the cursor; new commits in this process wake the stream at once,
        commits by other processes are seen within ``poll_interval``.
        """
        batch_size = 500
        while True:
            batch = await self.outbox.read(self.db, after, list(types), limit=batch_size)
            for stored in batch:
                after = stored.sequence
                yield to_proto(stored, self.source)
            if len(batch) == batch_size:
                continue
            if not follow:
                return
            await self.outbox.wait(self.poll_interval)


class GrpcEventSource:
    """Reads another service's outbox through its ``EventStreamService``."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = events_pb2_grpc.EventStreamServiceStub(channel)

    async def stream(self, after: int, types: Sequence[str], follow: bool) -> AsyncIterator[events_pb2.Event]:
        """Events after the cursor, as the producer streams them."""
        request = events_pb2.StreamEventsRequest(after_sequence=after, types=list(types), follow=follow)
        call = self.stub.StreamEvents(request)
        try:
            async for response in call:
                yield response.event
        finally:
            call.cancel()
