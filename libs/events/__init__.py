"""Events: a transactional outbox per service, served as an ordered stream with a cursor."""

from libs.events._consumer import DurableConsumer, consumer_tables, follow_events
from libs.events._outbox import Outbox, StoredEvent, outbox_table
from libs.events._source import EventSource, GrpcEventSource, OutboxEventSource, to_proto
from libs.events._stream import EventStreamServicer, event_stream_service

__all__ = [
    "DurableConsumer",
    "EventSource",
    "EventStreamServicer",
    "GrpcEventSource",
    "Outbox",
    "OutboxEventSource",
    "StoredEvent",
    "consumer_tables",
    "event_stream_service",
    "follow_events",
    "outbox_table",
    "to_proto",
]
