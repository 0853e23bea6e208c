"""What happens inside the transaction of events that changed users' facts.

The event intake records a batch of events in one transaction (`service.batch.Batch`):
it calls every listener's `on_event` for each new event after folding it into its
user's facts, then writes what the listeners staged. A listener reads what the batch's
users need on its first event, for all of them at once (`Batch.state`). Whatever a
listener writes (segment membership, campaign rewards, outbox events) commits with the
events, or not at all.
"""

from __future__ import annotations

from typing import Protocol

from services.marketing.domain.events import UserEvent
from services.marketing.domain.facts import UserFacts
from services.marketing.service.batch import Batch


class EventListener(Protocol):
    """Reacts to new events of users, with each user's facts after the event."""

    def on_event(self, batch: Batch, event: UserEvent, facts: UserFacts) -> None:
        """Called once per new event (never for a duplicate), in the batch's order."""
        ...
