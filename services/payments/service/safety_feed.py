"""Safety actions from Trust & Safety: a suspended user's wallet is frozen (no money goes
out; refunds and credits still land) and thawed when the suspension is lifted. Applied
from TnS's ``UserStandingChanged`` events, exactly once each, from a durable cursor.
"""

from __future__ import annotations

from datetime import UTC

import structlog
from furima.events.v1 import events_pb2
from furima.tns.v1 import enforcement_service_pb2
from furima.tns.v1 import events_pb2 as tns_events
from google.protobuf.message import DecodeError

from libs.events import DurableConsumer, EventSource
from libs.storage import Database, Transaction
from services.payments.store import frozen as frozen_repo
from services.payments.store.tables import event_cursors, processed_events

log = structlog.get_logger("furima.payments.safety")

CONSUMER_NAME = "payments.tns-standing"
STANDING_CHANGED = tns_events.UserStandingChanged.DESCRIPTOR.full_name
SUSPENDED = enforcement_service_pb2.STANDING_LEVEL_SUSPENDED


async def apply_standing_event(tx: Transaction, event: events_pb2.Event) -> None:
    """Freeze on a move into suspension, thaw on a move out of it; other moves change nothing."""
    change = tns_events.UserStandingChanged()
    try:
        unpacked = event.type == STANDING_CHANGED and event.payload.Unpack(change)
    except DecodeError:
        unpacked = False
    if not unpacked or not change.user_id or len(change.user_id) > 40:
        # Skipped, not retried: a poison event must not stall every later one.
        log.error("standing_event_malformed", event_id=event.id, type=event.type, sequence=event.sequence)
        return
    if change.level == SUSPENDED:
        at = (change.changed_at if change.HasField("changed_at") else event.occurred_at).ToDatetime(tzinfo=UTC)
        await frozen_repo.freeze(tx.conn, change.user_id, change.reason or "suspended by trust and safety", at)
    elif change.previous_level == SUSPENDED:
        await frozen_repo.unfreeze(tx.conn, change.user_id)


def standing_consumer(db: Database, source: EventSource) -> DurableConsumer:
    """The durable consumer of TnS standing changes into the payments database."""
    return DurableConsumer(
        CONSUMER_NAME, source, db, (event_cursors, processed_events), apply_standing_event, (STANDING_CHANGED,)
    )
