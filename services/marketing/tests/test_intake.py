"""The event intake: validation of whole batches, dedupe by event id, facts folded in
order, listeners inside the transaction, time limits, and exact counts under concurrency
(SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from libs.clock import FrozenClock
from libs.errors import FieldViolation, InvalidArgument
from libs.events import Outbox
from libs.storage import Database
from services.marketing.domain import facts as facts_domain
from services.marketing.domain.events import DEFAULT_CATALOGUE, UserEvent
from services.marketing.domain.facts import UserFacts
from services.marketing.service.batch import Batch
from services.marketing.service.events import EventIntake, TrackResult, same_event
from services.marketing.service.listeners import EventListener
from services.marketing.store import facts as facts_repo
from services.marketing.store.tables import outbox as outbox_table

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
JST = timezone(timedelta(hours=9))


def listed(event_id: str, user_id: str = "usr_a", price: int = 1000, at: datetime = NOW) -> UserEvent:
    """An ``item_listed`` event."""
    return UserEvent(event_id, user_id, "item_listed", at, {"item_id": f"item-{event_id}", "price": price})


class Recorder:
    """A listener that remembers each call and what the transaction showed it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool]] = []

    def on_event(self, batch: Batch, event: UserEvent, facts: UserFacts) -> None:
        conn, now = batch.conn, batch.now
        logged = facts_repo.stored_event(conn, event.event_id) is not None
        self.calls.append(
            (event.event_id, facts_domain.count(facts, event.type, now), logged and conn.in_transaction())
        )


class Exploding:
    """A listener that fails on one event id."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id

    def on_event(self, batch: Batch, event: UserEvent, facts: UserFacts) -> None:
        if event.event_id == self.event_id:
            raise RuntimeError("listener failed")


def make_intake(db: Database, *listeners: EventListener, outbox: Outbox | None = None) -> EventIntake:
    """An intake over ``db`` at ``NOW`` with the default catalogue."""
    return EventIntake(db, FrozenClock(NOW), DEFAULT_CATALOGUE, outbox or Outbox(outbox_table), listeners)


async def facts_of(db: Database, user_id: str) -> tuple[UserFacts, int]:
    """The stored facts of a user and their version."""
    async with db.read() as conn:
        return await conn.run_sync(lambda c: facts_repo.load(c, user_id))


async def stored(db: Database, event_id: str) -> UserEvent | None:
    """The logged event of an id, if any."""
    async with db.read() as conn:
        return await conn.run_sync(lambda c: facts_repo.stored_event(c, event_id))


async def test_a_new_event_is_logged_and_folded_into_the_users_facts(db: Database) -> None:
    """A tracked event is logged as sent and counted and summed in the user's facts."""
    intake = make_intake(db)
    event = listed("e1", price=1200)
    assert await intake.track_one(event) == TrackResult("e1", duplicate=False)
    assert await stored(db, "e1") == event
    facts, version = await facts_of(db, "usr_a")
    assert version == 2  # a new user's empty row is claimed first, then the event is saved
    assert facts_domain.count(facts, "item_listed", NOW) == 1
    assert facts_domain.total(facts, "item_listed", "price", NOW, days=7) == 1200


async def test_a_resent_event_is_a_duplicate_and_changes_nothing(db: Database) -> None:
    """The same event id with the same event: reported duplicate, facts and listeners untouched."""
    recorder = Recorder()
    intake = make_intake(db, recorder)
    await intake.track_one(listed("e1"))
    # The same instant in another zone is the same event.
    again = listed("e1", at=NOW.astimezone(JST))
    assert await intake.track_one(again) == TrackResult("e1", duplicate=True)
    assert await intake.track([listed("e1"), listed("e2")]) == [TrackResult("e1", True), TrackResult("e2", False)]
    facts, version = await facts_of(db, "usr_a")
    assert (facts_domain.count(facts, "item_listed", NOW), version) == (2, 3)
    assert [call[0] for call in recorder.calls] == ["e1", "e2"]


async def test_an_event_id_reused_for_another_event_refuses_the_whole_batch(db: Database) -> None:
    """Same id, other content: EVENT_ID_REUSED on the id's path; the batch's new events are not recorded."""
    intake = make_intake(db)
    await intake.track_one(listed("e1", price=1000))
    with pytest.raises(InvalidArgument) as single:
        await intake.track_one(listed("e1", price=999))
    assert single.value.reason == "EVENT_ID_REUSED"
    assert single.value.violations == [FieldViolation("event.event_id", "was recorded already with another event")]

    with pytest.raises(InvalidArgument) as batch:
        await intake.track([listed("e2"), listed("e1", user_id="usr_b"), listed("e3")])
    assert batch.value.reason == "EVENT_ID_REUSED"
    assert [v.field for v in batch.value.violations] == ["events[1].event_id"]
    assert await stored(db, "e2") is None
    facts, _ = await facts_of(db, "usr_a")
    assert facts_domain.count(facts, "item_listed", NOW) == 1


def test_same_event_compares_instants_and_typed_properties() -> None:
    """One instant in two zones is the same event; a property True and a property 1 are not."""
    event = UserEvent("x", "usr_a", "t", NOW, {"p": True})
    assert same_event(event, replace(event, occurred_at=NOW.astimezone(JST)))
    assert not same_event(event, replace(event, properties={"p": 1}))
    assert not same_event(event, replace(event, user_id="usr_b"))


async def test_one_invalid_event_refuses_the_batch_with_every_violation(db: Database) -> None:
    """Validation runs over the whole batch first: every problem on events[i], nothing recorded."""
    intake = make_intake(db)
    batch = [
        listed("e1"),
        UserEvent("e2", "usr_a", "item_lsted", NOW),
        listed("e3"),
        UserEvent("e4", "usr_a", "payment_captured", NOW, {"amount": 5}),
        UserEvent("e5", "usr_a", "item_listed", NOW, {"price": "12"}),
    ]
    with pytest.raises(InvalidArgument) as info:
        await intake.track(batch)
    assert info.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in info.value.violations] == [
        "events[1].type",
        "events[3].type",
        "events[4].properties[price]",
    ]
    assert "did you mean 'item_listed'" in info.value.violations[0].description
    assert await stored(db, "e1") is None
    assert await facts_of(db, "usr_a") == (UserFacts("usr_a"), 0)


async def test_batch_size_is_one_to_five_hundred(db: Database) -> None:
    """An empty batch and a batch over 500 events are refused on ``events``."""
    intake = make_intake(db)
    for batch in ([], [listed(f"e{i}") for i in range(501)]):
        with pytest.raises(InvalidArgument) as info:
            await intake.track(batch)
        assert [v.field for v in info.value.violations] == ["events"]


async def test_a_users_events_in_one_batch_fold_in_order(db: Database) -> None:
    """Counts add up, and of two attribute changes at one instant the later in the batch wins."""
    recorder = Recorder()
    intake = make_intake(db, recorder)
    batch = [
        UserEvent("p1", "usr_a", "profile_updated", NOW, {"region": "kanto"}),
        listed("e1", user_id="usr_b"),
        listed("e2"),
        UserEvent("p2", "usr_a", "profile_updated", NOW, {"region": "kansai"}),
        listed("e3"),
        listed("e2"),  # the same event twice in one batch: recorded once
    ]
    results = await intake.track(batch)
    assert [r.duplicate for r in results] == [False, False, False, False, False, True]
    facts, version = await facts_of(db, "usr_a")
    assert facts_domain.attribute(facts, "region") == "kansai"
    assert facts_domain.count(facts, "item_listed", NOW) == 2
    assert version == 2  # the empty row, then one save for the whole batch
    assert recorder.calls == [
        ("p1", 1, True),
        ("e1", 1, True),
        ("e2", 1, True),
        ("p2", 2, True),
        ("e3", 2, True),
    ]


async def test_listeners_run_inside_the_transaction_and_a_failure_rolls_the_event_back(db: Database) -> None:
    """A listener sees the event logged in its transaction; one that raises undoes the whole batch."""
    recorder = Recorder()
    intake = make_intake(db, recorder, Exploding("boom"))
    with pytest.raises(RuntimeError, match="listener failed"):
        await intake.track([listed("e1"), listed("boom")])
    assert await stored(db, "e1") is None
    assert await facts_of(db, "usr_a") == (UserFacts("usr_a"), 0)
    await intake.track([listed("e1")])
    assert recorder.calls[-1] == ("e1", 1, True)


async def test_listener_outbox_events_wake_the_streams_after_commit(db: Database) -> None:
    """The intake notifies the outbox once the batch has committed."""
    outbox = Outbox(outbox_table)
    intake = make_intake(db, outbox=outbox)
    waiting = asyncio.create_task(outbox.wait(30))
    await asyncio.sleep(0)  # let the waiter register
    await intake.track_one(listed("e1"))
    async with asyncio.timeout(5):
        await waiting


async def test_time_limits(db: Database) -> None:
    """Up to 5 minutes ahead and 400 days back for tracked events; stream events of any age."""
    intake = make_intake(db)
    await intake.track_one(listed("soon", at=NOW + timedelta(minutes=5)))
    await intake.track_one(listed("old", at=NOW - timedelta(days=399)))
    for at, problem in (
        (NOW + timedelta(minutes=5, seconds=1), "is more than 5 minutes in the future"),
        (NOW - timedelta(days=400, seconds=1), "is more than 400 days in the past"),
    ):
        with pytest.raises(InvalidArgument) as info:
            await intake.track_one(listed("bad", at=at))
        assert [v.field for v in info.value.violations] == ["event.occurred_at"]
        assert info.value.violations[0].description.startswith(problem)
    signed_up_at = NOW - timedelta(days=3 * 365)
    await intake.track_one(UserEvent("id:1", "usr_a", "user_signed_up", signed_up_at, {"region": "JP"}), source="id")
    facts, _ = await facts_of(db, "usr_a")
    assert facts_domain.attribute(facts, "signup_at") == signed_up_at
    assert facts_domain.count(facts, "item_listed", NOW) == 2


async def test_ids_and_numbers_must_fit_the_log(db: Database) -> None:
    """Ids longer than the log's columns and ints beyond 64 bits are refused on their paths."""
    intake = make_intake(db)
    too_long = UserEvent("e" * 129, "u" * 65, "item_listed", NOW, {"price": 2**63})
    with pytest.raises(InvalidArgument) as info:
        await intake.track_one(too_long)
    assert [v.field for v in info.value.violations] == [
        "event.event_id",
        "event.user_id",
        "event.properties[price]",
    ]


async def test_concurrent_tracks_of_one_user_count_exactly(db: Database) -> None:
    """20 concurrent calls for one (new) user: every event counted once."""
    recorder = Recorder()
    intake = make_intake(db, recorder)
    results = await asyncio.gather(*(intake.track_one(listed(f"e{i}", price=i)) for i in range(20)))
    assert not any(r.duplicate for r in results)
    facts, version = await facts_of(db, "usr_a")
    assert facts_domain.count(facts, "item_listed", NOW) == 20
    assert facts_domain.total(facts, "item_listed", "price", NOW) == sum(range(20))
    assert 2 <= version <= 21  # one save per transaction; concurrent calls share them
    assert sorted(call[0] for call in recorder.calls if call[2]) == sorted(f"e{i}" for i in range(20))


async def test_concurrent_overlapping_batches_record_each_event_once(db: Database) -> None:
    """Ten callers send the same two users' events in different orders: each id is new exactly once."""
    intake = make_intake(db)
    events = [listed(f"a{i}", "usr_a") for i in range(5)] + [listed(f"b{i}", "usr_b") for i in range(5)]
    batches = [random.sample(events, len(events)) for _ in range(10)]
    results = await asyncio.gather(*(intake.track(batch) for batch in batches))
    new = sorted(r.event_id for batch in results for r in batch if not r.duplicate)
    assert new == sorted(e.event_id for e in events)
    for user_id in ("usr_a", "usr_b"):
        facts, version = await facts_of(db, user_id)
        # The first batch to commit records all five (one save); the others find duplicates.
        assert (facts_domain.count(facts, "item_listed", NOW), version) == (5, 2)


async def test_concurrent_calls_share_transactions_yet_each_gets_its_own_answer(db: Database) -> None:
    """Twenty concurrent TrackEvent calls are recorded in shared transactions (group commit);
    the one that reuses an id with another event alone gets EVENT_ID_REUSED, and a call
    repeating another's event is a duplicate.
    """
    recorder = Recorder()
    intake = make_intake(db, recorder)
    await intake.track_one(listed("taken", "usr_z"))
    calls = [listed(f"c{i}", f"usr_{i % 5}") for i in range(18)] + [listed("taken", "usr_y"), listed("c0", "usr_0")]
    answers = await asyncio.gather(*(intake.track_one(event) for event in calls), return_exceptions=True)
    reused = answers[18]
    assert isinstance(reused, InvalidArgument)
    assert reused.reason == "EVENT_ID_REUSED"
    assert [v.field for v in reused.violations] == ["event.event_id"]
    results = [a for i, a in enumerate(answers) if i != 18]
    assert all(isinstance(a, TrackResult) for a in results)
    assert [a.duplicate for a in results if isinstance(a, TrackResult)] == [False] * 18 + [True]
    for n in range(5):
        facts, _ = await facts_of(db, f"usr_{n}")
        assert facts_domain.count(facts, "item_listed", NOW) == len(range(n, 18, 5))
    assert len(recorder.calls) == 1 + 18  # each new event reached the listener once
