"""The marketing schema (SQLAlchemy Core): one MetaData for every table of the service.

Each area defines its tables in its own module on this ``metadata`` (events and facts,
segments, campaigns, experiments); the migrations create them all.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from libs.events import consumer_tables, outbox_table

metadata = MetaData()

outbox = outbox_table(metadata)
event_cursors, processed_events = consumer_tables(metadata)
