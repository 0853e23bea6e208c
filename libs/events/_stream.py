"""The ``furima.events.v1.EventStreamService`` servicer every service registers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
from furima.events.v1 import events_pb2, events_pb2_grpc
from google.protobuf.descriptor import ServiceDescriptor

from libs.errors import Violations
from libs.events._source import OutboxEventSource


class EventStreamServicer(events_pb2_grpc.EventStreamServiceServicer):
    """Serves a service's outbox in order from the consumer's cursor."""

    def __init__(self, source: OutboxEventSource) -> None:
        self.source = source

    async def StreamEvents(  # noqa: N802 — the gRPC method name
        self, request: events_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[events_pb2.StreamEventsResponse]:
        """Stream events after ``after_sequence``; keep following when asked to."""
        problems = Violations()
        if request.after_sequence < 0:
            problems.add("after_sequence", "must be zero or positive")
        if len(request.types) > 100:
            problems.add("types", "at most 100 types")
        problems.raise_if_any()
        async for event in self.source.stream(request.after_sequence, list(request.types), request.follow):
            yield events_pb2.StreamEventsResponse(event=event)


EVENT_STREAM_SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventStreamService"]


def event_stream_service(
    source: OutboxEventSource,
) -> tuple[Callable[[EventStreamServicer, grpc.aio.Server], None], EventStreamServicer, ServiceDescriptor]:
    """``(register, servicer, descriptor)`` serving ``source``, for ``GrpcServer.add(*...)``."""
    return events_pb2_grpc.add_EventStreamServiceServicer_to_server, EventStreamServicer(source), EVENT_STREAM_SERVICE
