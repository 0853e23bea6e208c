"""The stream feeds: ID, Payments and TnS outbox events become the catalogue's stream
events, once each (a redelivery or a replayed stream changes nothing), poison events are
skipped, and a failure inside the transaction leaves the event to be delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from furima.events.v1 import events_pb2
from furima.id.v1 import events_pb2 as id_events
from furima.payments.v1 import events_pb2 as payments_events
from furima.tns.v1 import enforcement_service_pb2 as tns_enforcement
from furima.tns.v1 import events_pb2 as tns_events
from furima.types.v1 import money_pb2
from google.protobuf.message import Message
from sqlalchemy import MetaData, delete, select

from libs.clock import FrozenClock
from libs.events import EventSource, Outbox, OutboxEventSource, outbox_table
from libs.pb import timestamp
from libs.storage import Database
from services.marketing.domain import facts as facts_domain
from services.marketing.domain.events import DEFAULT_CATALOGUE, UserEvent
from services.marketing.domain.facts import UserFacts
from services.marketing.service.batch import Batch
from services.marketing.service.events import EventIntake
from services.marketing.service.feeds import FEEDS, EventFeed, feeds
from services.marketing.store import facts as facts_repo
from services.marketing.store.tables import event_cursors, processed_events
from services.marketing.store.tables import outbox as marketing_outbox_table

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)


@dataclass
class Producer:
    """Another service's database and outbox, streamed as `OutboxEventSource` would serve it."""

    db: Database
    outbox: Outbox
    source: OutboxEventSource

    async def emit(self, aggregate_id: str, *payloads: Message) -> list[str]:
        """Commit ``payloads`` to the outbox; returns their event ids."""
        async with self.db.transaction() as tx:
            return [await self.outbox.append(tx, aggregate_id, payload) for payload in payloads]


@pytest.fixture
async def producer(tmp_path: Path) -> AsyncIterator[Producer]:
    """Provide a producer's outbox in its own SQLite database."""
    metadata = MetaData()
    table = outbox_table(metadata)
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/producer.db")
    async with database.transaction() as tx:
        await tx.conn.run_sync(metadata.create_all)
    outbox = Outbox(table, clock=FrozenClock(EARLIER))
    yield Producer(database, outbox, OutboxEventSource(database, outbox, "producer", poll_interval=0.05))
    await database.dispose()


class Failing:
    """A listener that fails while ``failing`` is set."""

    failing = True

    def on_event(self, batch: Batch, event: UserEvent, facts: UserFacts) -> None:
        if self.failing:
            raise RuntimeError("listener failed")


def make_intake(db: Database, *listeners: Failing, outbox: Outbox | None = None) -> EventIntake:
    """An intake at ``NOW`` with the default catalogue."""
    return EventIntake(db, FrozenClock(NOW), DEFAULT_CATALOGUE, outbox or Outbox(marketing_outbox_table), listeners)


def feed_of(name: str, db: Database, intake: EventIntake, source: EventSource) -> EventFeed:
    """The one feed of ``name`` over ``source``."""
    (feed,) = feeds(db, intake, {name: source})
    return feed


def payment(transition: str, *, moved: int = 1200, fee: int = 0, **funding: int) -> payments_events.PaymentEvent:
    """A PaymentEvent of usr_buyer paying usr_seller 1200 JPY."""
    return payments_events.PaymentEvent(
        payment_id="pay_1",
        order_id="ord_1",
        buyer_id="usr_buyer",
        seller_id="usr_seller",
        transition=transition,
        amount=money_pb2.Money(amount=1200, currency="JPY"),
        moved=money_pb2.Money(amount=moved, currency="JPY"),
        fee=money_pb2.Money(amount=fee, currency="JPY"),
        funding=funding or {"CASH": 1200},
        occurred_at=timestamp(EARLIER),
    )


async def logged(db: Database, user_id: str) -> list[tuple[str, str, str, dict[str, object]]]:
    """A user's logged events: (event id, type, source, properties), by event id."""
    t = facts_repo.events.c
    async with db.read() as conn:
        rows = (await conn.execute(select(t.event_id).where(t.user_id == user_id).order_by(t.event_id))).all()
        out = []
        for (event_id,) in rows:
            event = await conn.run_sync(lambda c, e=event_id: facts_repo.stored_event(c, e))
            source = await conn.scalar(select(t.source).where(t.event_id == event_id))
            assert event is not None
            out.append((event.event_id, event.type, str(source), dict(event.properties)))
        return out


async def facts_of(db: Database, user_id: str) -> tuple[UserFacts, int]:
    """A user's stored facts and version."""
    async with db.read() as conn:
        return await conn.run_sync(lambda c: facts_repo.load(c, user_id))


async def test_payments_stream_maps_captures_pay_later_completions_and_points(db: Database, producer: Producer) -> None:
    """CAPTURED → payment_captured (+ pay_later_used), COMPLETED → payment_completed and the
    seller's sale_completed, PointsGranted → points_granted; other transitions are ignored.
    """
    points = payments_events.PointsGranted(
        grant_id="g1",
        user_id="usr_buyer",
        amount=money_pb2.Money(amount=300, currency="JPY"),
        campaign_id="spring",
        granted_at=timestamp(EARLIER),
    )
    captured, authorized, completed, granted = await producer.emit(
        "usr_buyer",
        payment("CAPTURED", CASH=700, CREDIT=500),
        payment("AUTHORIZED", moved=0),
        payment("COMPLETED", fee=120, CASH=700, CREDIT=500),
        points,
    )
    feed = feed_of("payments", db, make_intake(db), producer.source)
    assert feed.name == "marketing.payments"
    assert await feed.drain() == 4
    assert await logged(db, "usr_buyer") == sorted(
        [
            (
                f"payments:{captured}",
                "payment_captured",
                "payments",
                {"payment_id": "pay_1", "amount": 1200, "pay_later": True},
            ),
            (f"payments:{captured}:pay_later", "pay_later_used", "payments", {"payment_id": "pay_1", "amount": 500}),
            (f"payments:{completed}", "payment_completed", "payments", {"payment_id": "pay_1", "amount": 1200}),
            (f"payments:{granted}", "points_granted", "payments", {"campaign_id": "spring", "amount": 300}),
        ]
    )
    assert await logged(db, "usr_seller") == [
        (f"payments:{completed}:sale", "sale_completed", "payments", {"payment_id": "pay_1", "amount": 1080})
    ]
    assert not any(authorized in event_id for event_id, *_ in await logged(db, "usr_buyer"))
    facts, _ = await facts_of(db, "usr_buyer")
    assert facts_domain.total(facts, "payment_captured", "amount", NOW, days=1) == 1200
    assert facts_domain.first_at(facts, "payment_captured") == EARLIER


async def test_a_cash_capture_is_not_pay_later(db: Database, producer: Producer) -> None:
    """Without credit in the funding, a capture says pay_later false and nothing else is recorded."""
    (captured,) = await producer.emit("usr_buyer", payment("CAPTURED", moved=800, CASH=1200))
    await feed_of("payments", db, make_intake(db), producer.source).drain()
    assert await logged(db, "usr_buyer") == [
        (
            f"payments:{captured}",
            "payment_captured",
            "payments",
            {"payment_id": "pay_1", "amount": 800, "pay_later": False},
        )
    ]


async def test_id_and_tns_streams_set_signup_region_and_standing(db: Database, producer: Producer) -> None:
    """UserSignedUp → user_signed_up (region, signup_at); UserStandingChanged → standing_changed."""
    signed_up_at = NOW - timedelta(days=900)  # stream history has no age limit
    signed_up = id_events.UserSignedUp(user_id="usr_a", region="JP", signed_up_at=timestamp(signed_up_at))
    restricted = tns_events.UserStandingChanged(
        user_id="usr_a",
        previous_level=tns_enforcement.STANDING_LEVEL_GOOD,
        level=tns_enforcement.STANDING_LEVEL_RESTRICTED,
        changed_at=timestamp(EARLIER),
    )
    (signup_id,) = await producer.emit("usr_a", signed_up)
    (standing_id,) = await producer.emit("usr_a", restricted)
    intake = make_intake(db)
    assert await feed_of("id", db, intake, producer.source).drain() == 1
    assert await feed_of("tns", db, intake, producer.source).drain() == 1
    assert await logged(db, "usr_a") == [
        (f"id:{signup_id}", "user_signed_up", "id", {"region": "JP"}),
        (f"tns:{standing_id}", "standing_changed", "tns", {"level": "RESTRICTED"}),
    ]
    facts, _ = await facts_of(db, "usr_a")
    assert facts_domain.attribute(facts, "signup_at") == signed_up_at
    assert facts_domain.attribute(facts, "region") == "JP"
    assert facts_domain.attribute(facts, "standing") == "RESTRICTED"


async def test_redelivery_and_a_replayed_stream_change_nothing(db: Database, producer: Producer) -> None:
    """A redelivered event is seen by the consumer; a stream replayed from 0 with the
    processed marks gone is still a duplicate to the event log.
    """
    await producer.emit("usr_buyer", payment("CAPTURED", CASH=700, CREDIT=500))
    feed = feed_of("payments", db, make_intake(db), producer.source)
    assert await feed.drain() == 1
    before = await facts_of(db, "usr_buyer")
    stream = [event async for event in producer.source.stream(0, [], follow=False)]
    assert await feed.apply(stream[0]) is False
    async with db.transaction() as tx:
        await tx.conn.execute(delete(processed_events))
        await tx.conn.execute(delete(event_cursors))
    assert await feed.drain() == 1  # the consumer forgot it; the log did not
    assert await facts_of(db, "usr_buyer") == before
    assert len(await logged(db, "usr_buyer")) == 2


class _Fixed:
    """An event source holding a fixed list (a stream with odd events)."""

    def __init__(self, events: Sequence[events_pb2.Event]) -> None:
        self.events = list(events)

    async def stream(self, after: int, types: Sequence[str], follow: bool) -> AsyncIterator[events_pb2.Event]:
        for event in self.events:
            if event.sequence > after and (not types or event.type in types):
                yield event


def wire(sequence: int, payload: Message, *, type_name: str | None = None) -> events_pb2.Event:
    """A stream event carrying ``payload`` (under another type name when given)."""
    event = events_pb2.Event(
        id=f"evt_{sequence}",
        sequence=sequence,
        type=type_name or payload.DESCRIPTOR.full_name,
        occurred_at=timestamp(EARLIER),
        source="tns",
    )
    event.payload.Pack(payload)
    return event


async def test_poison_events_are_skipped_and_the_stream_goes_on(db: Database) -> None:
    """A payload of the wrong type, no user, no level, an unknown level, a user id too long
    for the log: each is skipped (the cursor moves past it), the valid one is recorded.
    """
    standing = tns_events.UserStandingChanged.DESCRIPTOR.full_name
    level = tns_enforcement.STANDING_LEVEL_WARNED
    stream = _Fixed(
        [
            wire(1, id_events.UserSignedUp(user_id="usr_a"), type_name=standing),
            wire(2, tns_events.UserStandingChanged(level=level)),
            wire(3, tns_events.UserStandingChanged(user_id="usr_a")),
            wire(4, tns_events.UserStandingChanged(user_id="usr_a", level=99)),
            wire(5, tns_events.UserStandingChanged(user_id="u" * 65, level=level)),
            wire(6, tns_events.UserStandingChanged(user_id="usr_a", level=level)),
        ]
    )
    feed = feed_of("tns", db, make_intake(db), stream)
    assert await feed.drain() == 6
    assert await feed.position() == 6
    assert [(event_id, kind) for event_id, kind, *_ in await logged(db, "usr_a")] == [("tns:evt_6", "standing_changed")]


async def test_a_refused_event_leaves_no_trace_and_is_skipped(db: Database) -> None:
    """A mapped id already logged with another event (EVENT_ID_REUSED) is skipped; nothing of
    it stays behind (not even the new user's facts row) and later events still flow.
    """
    intake = make_intake(db)
    long_ago = EARLIER - timedelta(days=1)
    await intake.track_one(
        UserEvent("tns:evt_1", "usr_x", "standing_changed", long_ago, {"level": "GOOD"}), source="tns"
    )
    level = tns_enforcement.STANDING_LEVEL_WARNED
    stream = _Fixed(
        [
            wire(1, tns_events.UserStandingChanged(user_id="usr_new", level=level)),
            wire(2, tns_events.UserStandingChanged(user_id="usr_x", level=level)),
        ]
    )
    feed = feed_of("tns", db, intake, stream)
    assert await feed.drain() == 2
    assert await facts_of(db, "usr_new") == (UserFacts("usr_new"), 0)
    facts, _ = await facts_of(db, "usr_x")
    assert facts_domain.attribute(facts, "standing") == "WARNED"


async def test_a_producer_clock_ahead_of_ours_records_the_event_now(db: Database) -> None:
    """A stream event dated beyond the allowed skew is recorded at our now, not refused."""
    ahead = tns_events.UserStandingChanged(
        user_id="usr_a", level=tns_enforcement.STANDING_LEVEL_WARNED, changed_at=timestamp(NOW + timedelta(hours=1))
    )
    await feed_of("tns", db, make_intake(db), _Fixed([wire(1, ahead)])).drain()
    facts, _ = await facts_of(db, "usr_a")
    assert facts_domain.last_at(facts, "standing_changed") == NOW


async def test_a_failure_in_the_transaction_leaves_the_event_for_redelivery(db: Database, producer: Producer) -> None:
    """A listener that raises rolls back the events, the processed mark and the cursor together."""
    listener = Failing()
    await producer.emit("usr_a", id_events.UserSignedUp(user_id="usr_a", region="JP"))
    feed = feed_of("id", db, make_intake(db, listener), producer.source)
    with pytest.raises(RuntimeError, match="listener failed"):
        await feed.drain()
    assert await feed.position() == 0
    assert await logged(db, "usr_a") == []
    listener.failing = False
    assert await feed.drain() == 1
    assert len(await logged(db, "usr_a")) == 1


async def test_a_running_feed_follows_the_stream(db: Database, producer: Producer) -> None:
    """``run()`` picks up new producer events as they commit; cancelling stops it."""
    outbox = Outbox(marketing_outbox_table)
    feed = feed_of("id", db, make_intake(db, outbox=outbox), producer.source)
    task = asyncio.create_task(feed.run())
    try:
        committed = asyncio.create_task(outbox.wait(10))  # the intake notifies after its commit
        await asyncio.sleep(0)
        await producer.emit("usr_a", id_events.UserSignedUp(user_id="usr_a", signed_up_at=timestamp(EARLIER)))
        async with asyncio.timeout(10):
            await committed
        facts, _ = await facts_of(db, "usr_a")
        assert facts_domain.attribute(facts, "signup_at") == EARLIER
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_feeds_names_and_unknown_sources(db: Database) -> None:
    """One named consumer per producer; a source without a feed is refused."""
    assert {name: feed.consumer for name, feed in FEEDS.items()} == {
        "id": "marketing.id-users",
        "payments": "marketing.payments",
        "tns": "marketing.tns-standing",
    }
    with pytest.raises(ValueError, match="no feed for"):
        feeds(db, make_intake(db), {"bank": _Fixed([])})


async def test_a_feed_and_api_calls_on_one_user_count_exactly(db: Database, producer: Producer) -> None:
    """The feed's transactions and concurrent TrackEvent calls for the same user all land once."""
    intake = make_intake(db)
    await producer.emit("usr_buyer", *(payment("CAPTURED", moved=100 + i) for i in range(10)))
    feed = feed_of("payments", db, intake, producer.source)
    opened = [UserEvent(f"open-{i}", "usr_buyer", "app_opened", NOW, {"platform": "ios"}) for i in range(10)]
    drained, *_ = await asyncio.gather(feed.drain(), *(intake.track_one(event) for event in opened))
    assert drained == 10
    facts, _ = await facts_of(db, "usr_buyer")
    assert facts_domain.count(facts, "app_opened", NOW) == 10
    assert facts_domain.total(facts, "payment_captured", "amount", NOW) == sum(100 + i for i in range(10))


async def test_a_batch_applies_each_new_event_once_in_one_transaction(db: Database, producer: Producer) -> None:
    """`apply_batch` (what `run` uses): an event applied before and an event twice in the
    batch count once; the cursor moves to the batch's last sequence; facts add up.
    """
    grant = payments_events.PointsGranted(user_id="usr_a", amount=money_pb2.Money(amount=100, currency="JPY"))
    await producer.emit("usr_a", grant, grant, grant)
    stream = [event async for event in producer.source.stream(0, [], follow=False)]
    feed = feed_of("payments", db, make_intake(db), producer.source)
    assert await feed.apply(stream[0]) is True
    assert await feed.apply_batch([stream[0], stream[1], stream[2], stream[1]]) == 2
    assert await feed.apply_batch(stream) == 0
    assert await feed.position() == stream[-1].sequence
    facts, _ = await facts_of(db, "usr_a")
    assert facts_domain.count(facts, "points_granted", NOW) == 3
    assert len(await logged(db, "usr_a")) == 3


async def test_a_batch_skips_poison_and_refused_events_and_records_the_rest(db: Database) -> None:
    """In one batch: a malformed event, an event id logged before with another event
    (EVENT_ID_REUSED) and two good ones. The good ones are recorded, every one is marked
    processed, and nothing of the refused one stays.
    """
    intake = make_intake(db)
    long_ago = EARLIER - timedelta(days=1)
    await intake.track_one(
        UserEvent("tns:evt_2", "usr_x", "standing_changed", long_ago, {"level": "GOOD"}), source="tns"
    )
    level = tns_enforcement.STANDING_LEVEL_WARNED
    batch = [
        wire(1, tns_events.UserStandingChanged(user_id="usr_a")),  # no level
        wire(2, tns_events.UserStandingChanged(user_id="usr_new", level=level)),  # id reused
        wire(3, tns_events.UserStandingChanged(user_id="usr_x", level=level)),
        wire(4, tns_events.UserStandingChanged(user_id="usr_a", level=level)),
    ]
    feed = feed_of("tns", db, intake, _Fixed(batch))
    assert await feed.apply_batch(batch) == 4
    assert await feed.position() == 4
    assert await facts_of(db, "usr_new") == (UserFacts("usr_new"), 0)
    for user_id in ("usr_x", "usr_a"):
        facts, _ = await facts_of(db, user_id)
        assert facts_domain.attribute(facts, "standing") == "WARNED"
    assert await feed.drain() == 0  # all four are processed


async def test_a_failing_batch_leaves_every_event_for_redelivery(db: Database, producer: Producer) -> None:
    """A listener that raises rolls the whole batch back: no event, no mark, no cursor move."""
    listener = Failing()
    await producer.emit("usr_a", id_events.UserSignedUp(user_id="usr_a"), id_events.UserSignedUp(user_id="usr_b"))
    stream = [event async for event in producer.source.stream(0, [], follow=False)]
    feed = feed_of("id", db, make_intake(db, listener), producer.source)
    with pytest.raises(RuntimeError, match="listener failed"):
        await feed.apply_batch(stream)
    assert await feed.position() == 0
    assert await logged(db, "usr_a") == await logged(db, "usr_b") == []
    listener.failing = False
    assert await feed.apply_batch(stream) == 2


async def test_a_running_feed_retries_a_failed_batch_until_it_lands(db: Database, producer: Producer) -> None:
    """``run()`` keeps a batch whose transaction failed and applies it once it can."""
    listener, outbox = Failing(), Outbox(marketing_outbox_table)
    feed = feed_of("id", db, make_intake(db, listener, outbox=outbox), producer.source)
    task = asyncio.create_task(feed.run(retry_after=0.01))
    try:
        await producer.emit("usr_a", id_events.UserSignedUp(user_id="usr_a"))
        await asyncio.sleep(0.3)  # a few failed tries
        assert await logged(db, "usr_a") == []
        committed = asyncio.create_task(outbox.wait(10))  # the intake notifies after its commit
        await asyncio.sleep(0)
        listener.failing = False
        async with asyncio.timeout(10):
            await committed
        assert len(await logged(db, "usr_a")) == 1
        assert await feed.position() == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
