"""What marketing learns from the other services' event streams: sign-ups from ID,
payments and points from Payments, standing changes from TnS.

Each stream has its own durable consumer (cursor and processed event ids in marketing's
database). An outbox event is mapped to the catalogue's stream event types (source
``furima.id``, ``furima.payments``, ``furima.tns``) and recorded through
`EventIntake.record_in` in the consumer's own transaction: the cursor move, the
processed mark, the events, the facts and whatever the listeners write commit together,
so each source event takes effect exactly once. The mapped events' ids derive from the
source event id (``payments:evt_...``), so even a source event replayed past the
processed mark (a reset cursor) is a duplicate to the event log.

A source event that cannot be mapped (a malformed payload) or that the intake refuses
is logged and skipped: one poison event must not stall every later one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from furima.events.v1 import events_pb2
from furima.id.v1 import events_pb2 as id_events
from furima.payments.v1 import events_pb2 as payments_events
from furima.tns.v1 import enforcement_service_pb2 as tns_enforcement
from furima.tns.v1 import events_pb2 as tns_events
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Connection

from libs.errors import InvalidArgument
from libs.events import DurableConsumer, EventSource
from libs.storage import Database, Transaction
from services.marketing.domain.events import MAX_FUTURE_SKEW, PropertyValue, UserEvent
from services.marketing.service.events import EventIntake, retry_races
from services.marketing.store.tables import event_cursors, processed_events

log = structlog.get_logger("furima.marketing.feeds")

SIGNED_UP = id_events.UserSignedUp.DESCRIPTOR.full_name
PAYMENT = payments_events.PaymentEvent.DESCRIPTOR.full_name
POINTS_GRANTED = payments_events.PointsGranted.DESCRIPTOR.full_name
STANDING_CHANGED = tns_events.UserStandingChanged.DESCRIPTOR.full_name

CREDIT = "CREDIT"
"""The funding source of a payment paid from the buyer's credit line (pay later)."""
_LEVEL_PREFIX = "STANDING_LEVEL_"


class MalformedEvent(Exception):
    """A source event whose payload cannot be read as its type says."""


Mapper = Callable[[events_pb2.Event], list[UserEvent]]
"""Maps one source event to the user events it means (none for what marketing ignores);
raises `MalformedEvent` when it cannot be read.
"""
M = TypeVar("M", bound=Message)


def map_signed_up(event: events_pb2.Event) -> list[UserEvent]:
    """``UserSignedUp`` → ``user_signed_up`` (region, when given; stamps signup_at)."""
    signed_up = _unpack(event, id_events.UserSignedUp())
    properties: dict[str, PropertyValue] = {"region": signed_up.region} if signed_up.region else {}
    at = _time(event, signed_up, "signed_up_at")
    return [UserEvent(_event_id(event, "id"), _user(signed_up.user_id), "user_signed_up", at, properties)]


def map_payment(event: events_pb2.Event) -> list[UserEvent]:
    """``PaymentEvent`` → the buyer's ``payment_captured`` (and ``pay_later_used`` when the
    credit line funded it) on CAPTURED; the buyer's ``payment_completed`` and the seller's
    ``sale_completed`` on COMPLETED; nothing on other transitions.

    Amounts are minor units of the payment's currency: what this transition moved
    (captured; completed net of refunds), the seller's proceeds net of the platform fee.
    ``pay_later_used`` counts the credit-line part of the funding, at most the captured
    amount.
    """
    payment = _unpack(event, payments_events.PaymentEvent())
    at = _time(event, payment, "occurred_at")
    moved = payment.moved.amount if payment.HasField("moved") else payment.amount.amount
    base_id = _event_id(event, "payments")
    if payment.transition == "CAPTURED":
        buyer = _user(payment.buyer_id)
        credit = max(0, min(payment.funding.get(CREDIT, 0), moved))
        captured: dict[str, PropertyValue] = {
            "payment_id": payment.payment_id,
            "amount": moved,
            "pay_later": credit > 0,
        }
        mapped = [UserEvent(base_id, buyer, "payment_captured", at, captured)]
        if credit:
            used: dict[str, PropertyValue] = {"payment_id": payment.payment_id, "amount": credit}
            mapped.append(UserEvent(f"{base_id}:pay_later", buyer, "pay_later_used", at, used))
        return mapped
    if payment.transition == "COMPLETED":
        completed: dict[str, PropertyValue] = {"payment_id": payment.payment_id, "amount": moved}
        sold: dict[str, PropertyValue] = {"payment_id": payment.payment_id, "amount": moved - payment.fee.amount}
        return [
            UserEvent(base_id, _user(payment.buyer_id), "payment_completed", at, completed),
            UserEvent(f"{base_id}:sale", _user(payment.seller_id), "sale_completed", at, sold),
        ]
    return []


def map_points_granted(event: events_pb2.Event) -> list[UserEvent]:
    """``PointsGranted`` → ``points_granted`` (campaign, when any; amount in points)."""
    granted = _unpack(event, payments_events.PointsGranted())
    properties: dict[str, PropertyValue] = {"amount": granted.amount.amount}
    if granted.campaign_id:
        properties["campaign_id"] = granted.campaign_id
    at = _time(event, granted, "granted_at")
    return [UserEvent(_event_id(event, "payments"), _user(granted.user_id), "points_granted", at, properties)]


def map_standing_changed(event: events_pb2.Event) -> list[UserEvent]:
    """``UserStandingChanged`` → ``standing_changed`` with level GOOD, WARNED, RESTRICTED
    or SUSPENDED (sets the standing attribute).
    """
    change = _unpack(event, tns_events.UserStandingChanged())
    if change.level == tns_enforcement.STANDING_LEVEL_UNSPECIFIED:
        raise MalformedEvent("standing change without a level")
    try:
        level = tns_enforcement.StandingLevel.Name(change.level).removeprefix(_LEVEL_PREFIX)
    except ValueError as exc:  # a level newer than these stubs
        raise MalformedEvent(f"unknown standing level {change.level}") from exc
    at = _time(event, change, "changed_at")
    return [UserEvent(_event_id(event, "tns"), _user(change.user_id), "standing_changed", at, {"level": level})]


@dataclass(frozen=True)
class Feed:
    """One producer's stream: the events table's ``source``, the consumer's name, and the
    mapper of each source event type marketing reads.
    """

    source: str
    consumer: str
    mappers: Mapping[str, Mapper]


FEEDS: Mapping[str, Feed] = {
    feed.source: feed
    for feed in (
        Feed("id", "marketing.id-users", {SIGNED_UP: map_signed_up}),
        Feed("payments", "marketing.payments", {PAYMENT: map_payment, POINTS_GRANTED: map_points_granted}),
        Feed("tns", "marketing.tns-standing", {STANDING_CHANGED: map_standing_changed}),
    )
}
"""The feeds by source: ``"id"``, ``"payments"``, ``"tns"``."""


class EventFeed(DurableConsumer):
    """A durable consumer of one producer's stream into the event intake."""

    def __init__(self, feed: Feed, db: Database, intake: EventIntake, source: EventSource) -> None:
        super().__init__(feed.consumer, source, db, (event_cursors, processed_events), self._handle, list(feed.mappers))
        self.feed = feed
        self._intake = intake

    async def apply(self, event: events_pb2.Event) -> bool:
        """Apply one event exactly once (False if seen before), retrying the transaction
        when it lost a race with another writer of the same user's facts.
        """
        apply_once = super().apply
        return await retry_races(lambda: apply_once(event))

    async def apply_batch(self, events: Sequence[events_pb2.Event]) -> int:
        """Apply events exactly once each in one transaction (what arrived on the stream
        meanwhile): the new ones recorded as one batch of the intake, the cursor moved
        and the ids marked, together. Returns how many were new.
        """
        applied = await retry_races(lambda: self.db.write_sync(lambda conn: self._apply_on(conn, events)))
        if applied:
            self._intake.announce()
        return applied

    def _apply_on(self, conn: Connection, events: Sequence[events_pb2.Event]) -> int:
        seen = self.processed_among(conn, [event.id for event in events])
        fresh: dict[str, events_pb2.Event] = {}
        for event in events:
            if event.id not in seen:
                fresh.setdefault(event.id, event)
        self.advance(conn, max(event.sequence for event in events))
        groups: list[tuple[events_pb2.Event, list[UserEvent]]] = []
        for event in fresh.values():
            mapped = self._map(event)
            if not mapped:
                continue
            try:
                self._intake.check(mapped, self.feed.source)
            except InvalidArgument as exc:
                self._refused(event, exc)
                continue
            groups.append((event, mapped))
        if groups:
            try:
                self._intake.record_on(conn, [e for _, group in groups for e in group], self.feed.source)
            except InvalidArgument:
                # One event's id was recorded before with another event: record the
                # others one source event at a time, refusing only that one.
                for event, group in groups:
                    try:
                        self._intake.record_on(conn, group, self.feed.source)
                    except InvalidArgument as exc:
                        self._refused(event, exc)
        self.mark_processed(conn, list(fresh))
        return len(fresh)

    async def _handle(self, tx: Transaction, event: events_pb2.Event) -> None:
        mapped = self._map(event)
        if not mapped:
            return
        try:
            await self._intake.record_in(tx, mapped, self.feed.source)
        except InvalidArgument as exc:
            self._refused(event, exc)

    def _map(self, event: events_pb2.Event) -> list[UserEvent]:
        """The user events of a source event (none for a type marketing ignores or a
        malformed event, which is logged).
        """
        mapper = self.feed.mappers.get(event.type)
        if mapper is None:
            return []
        try:
            mapped = mapper(event)
        except MalformedEvent as exc:
            log.error("feed_event_malformed", feed=self.name, event_id=event.id, type=event.type, error=str(exc))
            return []
        now = self._intake.clock.now()
        # The producer's clock may run ahead of ours; the event did happen, so it is
        # recorded as happening now rather than refused as "in the future".
        return [replace(e, occurred_at=now) if e.occurred_at > now + MAX_FUTURE_SKEW else e for e in mapped]

    def _refused(self, event: events_pb2.Event, exc: InvalidArgument) -> None:
        problems = [f"{v.field}: {v.description}" for v in exc.violations]
        log.error("feed_event_refused", feed=self.name, event_id=event.id, reason=exc.reason, problems=problems)


def feeds(db: Database, intake: EventIntake, sources: Mapping[str, EventSource]) -> list[EventFeed]:
    """The consumers of the streams in ``sources`` (keys ``"id"``, ``"payments"``,
    ``"tns"``; a producer not configured is left out). Run each with ``run()`` as a task;
    cancel it to stop.
    """
    unknown = sorted(set(sources) - set(FEEDS))
    if unknown:
        raise ValueError(f"no feed for {unknown}; known: {sorted(FEEDS)}")
    return [EventFeed(FEEDS[name], db, intake, source) for name, source in sorted(sources.items())]


def _unpack(event: events_pb2.Event, into: M) -> M:
    try:
        unpacked = event.payload.Unpack(into)
    except DecodeError as exc:
        raise MalformedEvent(f"payload of {event.type} does not decode") from exc
    if not unpacked:
        raise MalformedEvent(f"payload is a {event.payload.TypeName()}, not {into.DESCRIPTOR.full_name}")
    return into


def _user(user_id: str) -> str:
    if not user_id:
        raise MalformedEvent("no user id")
    return user_id


def _event_id(event: events_pb2.Event, source: str) -> str:
    if not event.id:
        raise MalformedEvent("no event id")
    return f"{source}:{event.id}"


def _time(event: events_pb2.Event, payload: Message, field: str) -> datetime:
    """The payload's own time when set, else when the producer recorded the event."""
    stamp: Timestamp = getattr(payload, field) if payload.HasField(field) else event.occurred_at
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise MalformedEvent(f"{field} is not a valid time") from exc
