"""What happens inside the transaction of an event that changed a user's facts.

The event intake calls every listener after it folded a new event into the user's facts,
on the same synchronous connection, so whatever a listener writes (segment membership,
campaign rewards, outbox events) commits with the event — or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from services.marketing.domain.events import UserEvent
from services.marketing.domain.facts import UserFacts


class EventListener(Protocol):
    """Reacts to a new event of a user, with the user's facts after it."""

    def on_event(self, conn: Connection, event: UserEvent, facts: UserFacts, now: datetime) -> None:
        """Called once per new event (never for a duplicate), inside its transaction."""
        ...
