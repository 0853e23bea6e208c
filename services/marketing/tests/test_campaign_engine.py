"""Campaigns on a real database: management, firings for events, budget under
concurrency, caps, frequency caps across time zones, holdout and restricted users, and
the grant queue through a Payments outage.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from furima.marketing.v1 import events_pb2
from sqlalchemy import Connection, select

from libs.clock import FrozenClock
from libs.errors import Aborted, FailedPrecondition, InvalidArgument
from libs.events import Outbox
from libs.storage import Database
from services.marketing.domain.campaigns import (
    CampaignDefinition,
    CampaignStatus,
    Channel,
    Communication,
    CouponIncentive,
    EventTrigger,
    PointsIncentive,
    SkipReason,
    Transition,
)
from services.marketing.domain.events import DEFAULT_CATALOGUE, UserEvent
from services.marketing.domain.experiment_runs import GlobalHoldout
from services.marketing.domain.facts import UserFacts, apply
from services.marketing.service.batch import Batch
from services.marketing.service.campaign_engine import CampaignEngine, RecordingSink
from services.marketing.service.campaigns import Campaigns
from services.marketing.service.events import retry_races
from services.marketing.service.grants import GrantDispatcher, GrantRefused, GrantRetry
from services.marketing.store import campaigns as store
from services.marketing.store.campaigns import Reward, campaign_rewards
from services.marketing.store.tables import outbox

NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
FIRST_LISTING = CampaignDefinition(
    name="points for a first listing",
    segment_id="everyone",
    trigger=EventTrigger("item_listed", first_only=True),
    incentive=PointsIncentive(300, "JPY", 30),
    communication=Communication(Channel.PUSH, "Thanks!", "{{incentive.amount}} points for you"),
    budget=1000,
    per_user_cap=1,
    frequency_caps={Channel.PUSH: 1},
)


@dataclass
class Members:
    """Segment membership by hand: segment → users (None: everyone)."""

    users: dict[str, set[str] | None] = field(default_factory=lambda: {"everyone": None})

    def memberships(self, conn: Connection, facts: UserFacts, now: datetime) -> set[str]:
        """The segments listing the user (or listing everyone)."""
        return {segment for segment, listed in self.users.items() if listed is None or facts.user_id in listed}


@dataclass
class Rig:
    """The campaign machinery on one database."""

    db: Database
    clock: FrozenClock
    campaigns: Campaigns
    engine: CampaignEngine
    sink: RecordingSink
    members: Members
    facts: dict[str, UserFacts] = field(default_factory=dict)
    seq: int = 0

    async def running(self, definition: CampaignDefinition = FIRST_LISTING, key: str = "c1") -> str:
        """A created and started campaign."""
        created = await self.campaigns.create("marketer", key, definition)
        await self.campaigns.transition(created.campaign_id, Transition.START, "marketer")
        return created.campaign_id

    async def event(self, user: str, kind: str = "item_listed", **properties: object) -> None:
        """One new event of the user, applied to their facts and fired, in one transaction."""
        self.seq += 1
        facts = self.facts.setdefault(user, UserFacts(user))
        event = UserEvent(f"evt_{self.seq}", user, kind, self.clock.now(), properties)  # type: ignore[arg-type]
        apply(facts, event, DEFAULT_CATALOGUE)
        snapshot = dataclasses.replace(facts)

        def write(conn: Connection) -> None:
            batch = Batch(conn, self.clock.now(), [snapshot], self.engine._outbox)
            self.engine.on_event(batch, event, snapshot)
            batch.flush()

        # As the intake does: a budget spent by another transaction meanwhile retries it.
        await retry_races(lambda: self.db.write_sync(write))

    async def events_in_one_batch(self, user: str, count: int) -> None:
        """``count`` item_listed events of the user recorded in one batch (one transaction)."""
        facts = self.facts.setdefault(user, UserFacts(user))
        events = []
        for _ in range(count):
            self.seq += 1
            events.append(UserEvent(f"evt_{self.seq}", user, "item_listed", self.clock.now(), {}))

        def write(conn: Connection) -> None:
            attempt = copy.deepcopy(facts)  # a retried attempt starts from the same facts
            batch = Batch(conn, self.clock.now(), [attempt], self.engine._outbox)
            for event in events:
                apply(attempt, event, DEFAULT_CATALOGUE)
                self.engine.on_event(batch, event, attempt)
            batch.flush()

        await retry_races(lambda: self.db.write_sync(write))


@pytest.fixture
def rig(db: Database) -> Rig:
    """Provide the campaign machinery with everyone in segment "everyone" and no holdout."""
    clock = FrozenClock(NOW)
    outbox_ = Outbox(outbox, clock=clock)
    members = Members()
    sink = RecordingSink([])
    engine = CampaignEngine(DEFAULT_CATALOGUE, members, sink, outbox_, GlobalHoldout(bps=0))
    segments = {"everyone", "vips"}
    campaigns = Campaigns(db, clock, DEFAULT_CATALOGUE, outbox_, lambda conn, sid: sid in segments)
    return Rig(db, clock, campaigns, engine, sink, members)


async def rewards(db: Database) -> list[tuple[str, str, int]]:
    """(user, status, amount) of every reward."""
    async with db.read() as conn:
        rows = (await conn.execute(select(campaign_rewards).order_by(campaign_rewards.c.created_at))).all()
    return [(r.user_id, r.status, int(r.amount)) for r in rows]


async def skips(rig: Rig, campaign_id: str) -> dict[str, int]:
    """The skip counters of a campaign."""
    stats = await rig.campaigns.stats(campaign_id)
    return {k.removeprefix("skip:"): v for k, v in stats.counters.get("", {}).items() if k.startswith("skip:")}


# -- management ------------------------------------------------------------------------------


async def test_create_is_idempotent_per_key_and_checks_the_segment(rig: Rig) -> None:
    """Same key and request: the same campaign; another request: IDEMPOTENCY_KEY_REUSED; unknown segment refused."""
    first = await rig.campaigns.create("marketer", "k1", FIRST_LISTING)
    assert (first.status, first.version) == (CampaignStatus.DRAFT, 1)
    assert (await rig.campaigns.create("marketer", "k1", FIRST_LISTING)).campaign_id == first.campaign_id
    with pytest.raises(InvalidArgument) as reused:
        await rig.campaigns.create("marketer", "k1", dataclasses.replace(FIRST_LISTING, budget=5))
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(InvalidArgument) as unknown:
        await rig.campaigns.create("marketer", "k2", dataclasses.replace(FIRST_LISTING, segment_id="nobody"))
    assert [v.field for v in unknown.value.violations] == ["campaign.segment_id"]


async def test_lifecycle_updates_and_the_clock(rig: Rig) -> None:
    """Updates need the version and an editable status; the clock starts and ends campaigns."""
    created = await rig.campaigns.create("marketer", "k1", FIRST_LISTING)
    with pytest.raises(Aborted):
        await rig.campaigns.update(created.campaign_id, FIRST_LISTING, expected_version=7)
    updated = await rig.campaigns.update(created.campaign_id, dataclasses.replace(FIRST_LISTING, budget=2000), 1)
    assert (updated.version, updated.definition.budget) == (2, 2000)
    start, end = NOW + timedelta(hours=1), NOW + timedelta(days=2)
    scheduled = await rig.campaigns.transition(
        created.campaign_id, Transition.SCHEDULE, "marketer", start_at=start, end_at=end
    )
    assert (scheduled.status, scheduled.start_at, scheduled.end_at) == (CampaignStatus.SCHEDULED, start, end)
    rig.clock.advance(3600)
    assert await rig.campaigns.run_clock() == 1
    running = await rig.campaigns.get(created.campaign_id)
    assert running.status is CampaignStatus.RUNNING
    with pytest.raises(FailedPrecondition):
        await rig.campaigns.update(created.campaign_id, FIRST_LISTING, running.version)
    paused = await rig.campaigns.transition(created.campaign_id, Transition.PAUSE, "marketer", "check copy")
    assert (await rig.campaigns.transition(created.campaign_id, Transition.PAUSE, "m")).version == paused.version
    rig.clock.advance(2 * 86400)
    assert await rig.campaigns.run_clock() == 1
    ended = await rig.campaigns.get(created.campaign_id)
    assert (ended.status, ended.end_reason) == (CampaignStatus.ENDED, "END_AT_REACHED")
    with pytest.raises(FailedPrecondition):
        await rig.campaigns.transition(created.campaign_id, Transition.RESUME, "marketer")
    async with rig.db.read() as conn:
        payloads = [r.payload for r in (await conn.execute(select(outbox.c.payload))).all()]
    moves = [events_pb2.CampaignStatusChanged.FromString(p) for p in payloads]
    assert [(m.previous_status, m.status) for m in moves] == [(1, 2), (2, 3), (3, 4), (4, 5)]


# -- firings ----------------------------------------------------------------------------------


async def test_a_first_listing_earns_points_and_a_message_once(rig: Rig) -> None:
    """The first listing queues 300 points and sends the push; the second is NOT_FIRST."""
    campaign_id = await rig.running()
    await rig.event("usr_a", category="books", price=1200, item_id="i1")
    await rig.event("usr_a", category="books", price=900, item_id="i2")
    assert await rewards(rig.db) == [("usr_a", "PENDING", 300)]
    assert rig.sink.sent == [("PUSH", "usr_a", "Thanks!", "300 points for you", "")]
    assert await skips(rig, campaign_id) == {"NOT_FIRST": 1}
    stats = await rig.campaigns.stats(campaign_id)
    assert (stats.campaign.spent, stats.counters[""]["incentives"], stats.counters[""]["users_reached"]) == (300, 1, 1)


async def test_the_budget_is_never_overspent_under_concurrency(rig: Rig) -> None:
    """30 users list at once against a ¥1,000 budget at ¥300 each: exactly 3 are granted."""
    campaign_id = await rig.running()
    await asyncio.gather(*(rig.event(f"usr_{i:02d}", price=100) for i in range(30)))
    granted = await rewards(rig.db)
    assert len(granted) == 3
    assert (await rig.campaigns.get(campaign_id)).spent == 900
    assert (await skips(rig, campaign_id))["BUDGET_EXHAUSTED"] == 27


async def test_per_user_cap_and_frequency_cap_in_the_users_time_zone(rig: Rig) -> None:
    """Cap 2 per user; one push per local day: 23:50 and 00:10 in Los Angeles are two days."""
    definition = dataclasses.replace(FIRST_LISTING, trigger=EventTrigger("item_listed"), per_user_cap=2, budget=10_000)
    campaign_id = await rig.running(definition)
    la = rig.facts.setdefault("usr_la", UserFacts("usr_la"))
    la.attributes["timezone"] = "America/Los_Angeles"
    la.attribute_times["timezone"] = NOW
    rig.clock.advance((datetime(2026, 12, 1, 7, 50, tzinfo=UTC) - NOW).total_seconds())  # 23:50 Nov 30 in LA
    await rig.event("usr_la")
    rig.clock.advance(20 * 60)  # 00:10 on Dec 1 in LA
    await rig.event("usr_la")
    rig.clock.advance(60)
    await rig.event("usr_la")
    assert [s[1] for s in rig.sink.sent] == ["usr_la", "usr_la"]
    assert [r[2] for r in await rewards(rig.db)] == [300, 300]
    tokyo_rig_user = "usr_tokyo"
    rig.clock.advance(60)  # 17:12 in Tokyo
    await rig.event(tokyo_rig_user)
    rig.clock.advance(20 * 60)  # 17:32, the same Tokyo day
    await rig.event(tokyo_rig_user)
    assert [s[1] for s in rig.sink.sent].count(tokyo_rig_user) == 1
    assert [r[0] for r in await rewards(rig.db)].count(tokyo_rig_user) == 2  # a capped message still grants
    assert await skips(rig, campaign_id) == {"PER_USER_CAP": 1, "FREQUENCY_CAP": 1}


async def test_a_frequency_cap_counts_the_messages_of_its_own_batch(rig: Rig) -> None:
    """A push earlier today is in the database; in the next batch an uncapped push
    campaign (created first, so it fires first) sends another, still staged when a
    campaign allowed two pushes a day checks: that one must count both and send nothing.
    """
    message_only = dataclasses.replace(
        FIRST_LISTING, trigger=EventTrigger("item_listed"), incentive=None, budget=0, per_user_cap=5
    )
    uncapped = dataclasses.replace(
        message_only, frequency_caps={}, communication=Communication(Channel.PUSH, "uncapped", "hi")
    )
    await rig.running(uncapped, key="uncapped")
    await rig.event("usr_batch")
    capped = dataclasses.replace(
        message_only,
        communication=Communication(Channel.PUSH, "capped", "hi"),
        frequency_caps={Channel.PUSH: 2},
    )
    await rig.running(capped, key="capped")
    await rig.events_in_one_batch("usr_batch", 1)
    titles = [title for _, user, title, _, _ in rig.sink.sent if user == "usr_batch"]
    assert titles == ["uncapped", "uncapped"]


async def test_holdout_restricted_and_outside_the_segment_get_nothing(rig: Rig, db: Database) -> None:
    """Global holdout, a RESTRICTED standing, and a user outside the segment: no reward, no message."""
    campaign_id = await rig.running(dataclasses.replace(FIRST_LISTING, segment_id="vips"), key="vip")
    rig.members.users["vips"] = {"usr_ok", "usr_bad"}
    bad = rig.facts.setdefault("usr_bad", UserFacts("usr_bad"))
    bad.attributes["standing"] = "RESTRICTED"
    bad.attribute_times["standing"] = NOW
    await rig.event("usr_bad")
    await rig.event("usr_stranger")
    held_out = CampaignEngine(DEFAULT_CATALOGUE, rig.members, rig.sink, rig.engine._outbox, GlobalHoldout(bps=10_000))
    rig.engine = held_out
    await rig.event("usr_ok")
    assert await rewards(db) == []
    assert rig.sink.sent == []
    assert await skips(rig, campaign_id) == {"USER_RESTRICTED": 1, "NOT_IN_SEGMENT": 1, "GLOBAL_HOLDOUT": 1}


async def test_a_coupon_is_issued_at_once(rig: Rig) -> None:
    """Coupons need no Payments call: GRANTED with an IncentiveGranted event in the event's transaction."""
    coupon = CouponIncentive("WELCOME", 500, "JPY", 14)
    await rig.running(dataclasses.replace(FIRST_LISTING, incentive=coupon, communication=None))
    await rig.event("usr_c")
    assert await rewards(rig.db) == [("usr_c", "GRANTED", 500)]


# -- the grant queue --------------------------------------------------------------------------


@dataclass
class FlakyPayments:
    """Payments that is down for the first ``down`` calls, refusing some users for good."""

    down: int = 0
    refuse: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    granted: dict[str, str] = field(default_factory=dict)

    async def grant(self, key: str, reward: Reward, description: str) -> str:
        """Grant once per key (like Payments), after the outage."""
        self.calls.append(key)
        if len(self.calls) <= self.down:
            raise GrantRetry("UNAVAILABLE: payments is down")
        if reward.user_id in self.refuse:
            raise GrantRefused("INVALID_ARGUMENT: no such user")
        return self.granted.setdefault(key, f"lot_{len(self.granted) + 1}")


async def test_grants_wait_out_an_outage_and_land_exactly_once(rig: Rig) -> None:
    """Payments down for 3 calls: the rewards stay PENDING, then each is granted once with one key."""
    campaign_id = await rig.running(dataclasses.replace(FIRST_LISTING, budget=10_000))
    for user in ("usr_1", "usr_2"):
        await rig.event(user)
    payments = FlakyPayments(down=3)
    dispatcher = GrantDispatcher(rig.db, rig.clock, Outbox(outbox, clock=rig.clock), payments)
    assert await dispatcher.run_due() == 0
    assert await dispatcher.run_due() == 0  # not due yet: backing off
    for _ in range(6):
        rig.clock.advance(10)
        await dispatcher.run_due()
    assert sorted(s for _, s, _ in await rewards(rig.db)) == ["GRANTED", "GRANTED"]
    assert len(payments.granted) == 2
    assert set(payments.calls) == {f"campaign:{campaign_id}:usr_{n}:evt_{n}" for n in (1, 2)}
    rig.clock.advance(3600)
    assert await dispatcher.run_due() == 0  # nothing left to send


async def test_a_refused_grant_fails_and_gives_the_budget_back(rig: Rig) -> None:
    """A permanent refusal: FAILED, the reservation released, counted as DELIVERY_FAILED."""
    campaign_id = await rig.running()
    await rig.event("usr_gone")
    dispatcher = GrantDispatcher(rig.db, rig.clock, Outbox(outbox, clock=rig.clock), FlakyPayments(refuse={"usr_gone"}))
    await dispatcher.run_due()
    assert await rewards(rig.db) == [("usr_gone", "FAILED", 300)]
    assert (await rig.campaigns.get(campaign_id)).spent == 0
    assert (await skips(rig, campaign_id))["DELIVERY_FAILED"] == 1


def test_skip_reasons_match_the_contract() -> None:
    """Every domain skip reason has its proto value."""
    from furima.marketing.v1 import campaign_service_pb2

    assert {f"SKIP_REASON_{r.value}" for r in SkipReason} <= set(campaign_service_pb2.SkipReason.keys())


async def test_store_round_trips_the_definition() -> None:
    """The stored form reads back equal."""
    assert store.decode_definition(store.encode_definition(FIRST_LISTING)) == FIRST_LISTING


def test_the_recording_sink_keeps_only_the_latest_messages() -> None:
    """A long-running development stack must not keep every message in memory."""
    sink = RecordingSink([], keep=3)
    for n in range(10):
        assert sink.deliver("PUSH", f"usr_{n}", "t", "b", "") is None
    assert len(sink.sent) <= 6
    assert [m[1] for m in sink.sent[-3:]] == ["usr_7", "usr_8", "usr_9"]
