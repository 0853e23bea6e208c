"""What TnS learns of users from the ID service's event stream: sign-ups (account age,
region) and suspensions, applied to ``known_users`` exactly once each.
"""

from __future__ import annotations

import re
from datetime import UTC

import structlog
from furima.events.v1 import events_pb2
from furima.id.v1 import events_pb2 as id_events
from google.protobuf.message import DecodeError, Message

from libs.events import DurableConsumer, EventSource
from libs.storage import Database, Transaction
from services.tns.domain.risk import USER_ID_MAX
from services.tns.store import known_users
from services.tns.store.tables import event_cursors, processed_events

log = structlog.get_logger("furima.tns.identity_feed")

CONSUMER_NAME = "tns.id-users"
SIGNED_UP = id_events.UserSignedUp.DESCRIPTOR.full_name
SUSPENDED = id_events.UserSuspended.DESCRIPTOR.full_name
REINSTATED = id_events.UserReinstated.DESCRIPTOR.full_name
EVENT_TYPES = (SIGNED_UP, SUSPENDED, REINSTATED)

_REGION = re.compile(r"^[A-Z]{2}$")


async def apply_identity_event(tx: Transaction, event: events_pb2.Event) -> None:
    """Apply one ID event in the consumer's transaction; other types are ignored."""
    if event.type == SIGNED_UP:
        signed_up = id_events.UserSignedUp()
        if _unpack(event, signed_up):
            when = signed_up.signed_up_at if signed_up.HasField("signed_up_at") else event.occurred_at
            # known_users.region is two characters; anything else is not a region.
            region = signed_up.region.upper() if _REGION.match(signed_up.region.upper()) else ""
            await known_users.record_sign_up(tx.conn, signed_up.user_id, region, when.ToDatetime(tzinfo=UTC))
    elif event.type == SUSPENDED:
        suspended = id_events.UserSuspended()
        if _unpack(event, suspended):
            await known_users.set_suspended(tx.conn, suspended.user_id, True)
    elif event.type == REINSTATED:
        reinstated = id_events.UserReinstated()
        if _unpack(event, reinstated):
            await known_users.set_suspended(tx.conn, reinstated.user_id, False)


def _unpack(event: events_pb2.Event, into: Message) -> bool:
    """Decode the payload; a malformed one is logged and skipped rather than retried
    forever, which would stall every later event of the stream.
    """
    user_id = ""
    try:
        unpacked = event.payload.Unpack(into)
        user_id = getattr(into, "user_id", "")
    except DecodeError:
        unpacked = False
    # known_users.user_id holds 40 characters: a longer id would fail the insert forever.
    if not unpacked or not user_id or len(user_id) > USER_ID_MAX:
        log.error("identity_event_malformed", event_id=event.id, type=event.type, sequence=event.sequence)
        return False
    return True


def identity_consumer(db: Database, source: EventSource) -> DurableConsumer:
    """The durable consumer of the ID service's user events into TnS's database."""
    return DurableConsumer(
        CONSUMER_NAME, source, db, (event_cursors, processed_events), apply_identity_event, EVENT_TYPES
    )
