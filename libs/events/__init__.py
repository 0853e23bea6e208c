"""Events: a transactional outbox per service, served as an ordered stream with a cursor."""

from libs.events._outbox import Outbox, StoredEvent, outbox_table

__all__ = ["Outbox", "StoredEvent", "outbox_table"]
