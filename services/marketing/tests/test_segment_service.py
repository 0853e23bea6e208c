"""The segment service over a real database: definitions are created idempotently,
updated at an expected version and validated (columns, field paths, references, cycles
across stored segments); previews save nothing; the materialized membership kept by
definition writes, the event listener and the refresh sweep agrees with real-time
evaluation, and every change is announced in the outbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from furima.marketing.v1 import events_pb2
from sqlalchemy import Connection

from libs.clock import FrozenClock
from libs.errors import Aborted, AlreadyExists, InvalidArgument, NotFound
from libs.events import Outbox
from libs.storage import Database
from services.marketing.domain.events import DEFAULT_CATALOGUE, PropertyValue, UserEvent
from services.marketing.domain.facts import apply
from services.marketing.domain.segments_conditions import (
    AttributeCondition,
    Condition,
    ConditionGroup,
    CountCondition,
    GroupOperator,
    Operator,
    SegmentCondition,
)
from services.marketing.service.batch import Batch
from services.marketing.service.segments import SegmentDraft, Segments, segment_exists
from services.marketing.store import facts as facts_store
from services.marketing.store import segments as segments_store  # noqa: F401 — registers the segment tables
from services.marketing.store.tables import outbox as outbox_table

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ENTERED = events_pb2.UserEnteredSegment.DESCRIPTOR.full_name
LEFT = events_pb2.UserLeftSegment.DESCRIPTOR.full_name
ACTOR = "client:marketing-console"

_ids = count(1)


def draft(
    segment_id: str, definition: str | ConditionGroup | None, name: str = "", description: str = ""
) -> SegmentDraft:
    """A draft with a display name defaulting to the id."""
    return SegmentDraft(segment_id, name or segment_id, description, definition)


@dataclass
class Harness:
    """A segment service with a frozen clock, and an event intake in miniature."""

    db: Database
    clock: FrozenClock
    outbox: Outbox
    segments: Segments

    async def track(self, user_id: str, kind: str, ago: timedelta = timedelta(0), **props: PropertyValue) -> str:
        """Record an event ``ago`` before now the way the intake does: log it, fold it into
        the user's facts, and call the maintainer in the same transaction.
        """
        event = UserEvent(f"ev-{next(_ids)}", user_id, kind, self.clock.now() - ago, props)

        def write(conn: Connection) -> None:
            now = self.clock.now()
            facts_store.record_events(conn, [event], "api", now)
            facts, version = facts_store.load(conn, user_id, lock=True)
            apply(facts, event, DEFAULT_CATALOGUE)
            facts_store.save_many(conn, [(facts, version)], now)
            batch = Batch(conn, now, [facts], self.outbox)
            self.segments.maintainer.on_event(batch, event, facts)
            batch.flush()

        await self.db.write_sync(write)
        return event.event_id

    async def members(self, segment_id: str) -> list[str]:
        """The whole materialized membership, read a page of 2 at a time."""
        out: list[str] = []
        after = ""
        while True:
            page = await self.segments.list_members(segment_id, 2, after)
            out.extend(page.user_ids)
            if page.next_after is None:
                return out
            after = page.next_after

    async def real_time(self, segment_id: str, users: list[str]) -> list[str]:
        """The users CheckMembership says are members, in order."""
        return [u for u in users if (await self.segments.check_membership(segment_id, u)).member]

    async def assert_agree(self, segment_ids: list[str], users: list[str]) -> None:
        """Batch (list and count) and real time give the same members."""
        for segment_id in segment_ids:
            batch = await self.members(segment_id)
            assert batch == await self.real_time(segment_id, users), segment_id
            assert (await self.segments.count_members(segment_id)).count == len(batch)

    async def announcements(self) -> list[tuple[str, str, str, int, str]]:
        """The membership events in the outbox: (entered/left, segment, user, version, cause)."""
        out = []
        for stored in await self.outbox.read(self.db, 0, [ENTERED, LEFT], limit=10_000):
            kind = events_pb2.UserEnteredSegment if stored.type == ENTERED else events_pb2.UserLeftSegment
            message = kind.FromString(stored.payload)
            assert stored.aggregate_id == message.user_id
            what = "entered" if stored.type == ENTERED else "left"
            out.append((what, message.segment_id, message.user_id, message.segment_version, message.cause_event_id))
        return out


@pytest.fixture
def h(db: Database) -> Harness:
    """Provide the service over the test database at `NOW`."""
    clock = FrozenClock(NOW)
    outbox = Outbox(outbox_table, clock=clock)
    return Harness(db, clock, outbox, Segments(db, clock, DEFAULT_CATALOGUE, outbox))


def violations(caught: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    """The violations of a refusal, by field (one per field in these tests)."""
    return {v.field: v.description for v in caught.value.violations}


# Definitions.


async def test_create_returns_version_one_with_what_the_definition_reads(h: Harness) -> None:
    """A new segment is version 1, keeps the expression as written, and reports its
    canonical spelling, references, event types (through references) and time sensitivity.
    """
    await h.segments.create(draft("sellers", "count(item_listed) >= 1"), ACTOR)
    created = await h.segments.create(
        draft("kanto-sellers", '(region=="kanto") and in_segment("sellers")', "Kanto sellers", "who sells in Kanto"),
        ACTOR,
    )
    assert created.version == 1
    assert created.definition == '(region=="kanto") and in_segment("sellers")'
    assert created.canonical_expression == 'region == "kanto" and in_segment("sellers")'
    assert (created.display_name, created.description) == ("Kanto sellers", "who sells in Kanto")
    assert created.referenced_segment_ids == ("sellers",)
    assert created.event_types == ("item_listed",)
    assert not created.time_sensitive
    assert created.created_at == created.updated_at == NOW
    assert await h.segments.get("kanto-sellers") == created


async def test_create_again_returns_the_segment_and_another_definition_is_already_exists(h: Harness) -> None:
    """The same id and definition (in either form) returns the stored segment; another
    definition, name or description under the id is ALREADY_EXISTS.
    """
    first = await h.segments.create(draft("listers", "count(item_listed) >= 1"), ACTOR)
    h.clock.advance(60)
    assert await h.segments.create(draft("listers", "count(item_listed)>=1"), ACTOR) == first
    structured = ConditionGroup(GroupOperator.ALL, (Condition(CountCondition("item_listed", None, Operator.GE, (1,))),))
    assert await h.segments.create(draft("listers", structured), ACTOR) == first
    with pytest.raises(AlreadyExists) as caught:
        await h.segments.create(draft("listers", "count(item_listed) >= 2"), ACTOR)
    assert caught.value.reason == "SEGMENT_EXISTS"
    with pytest.raises(AlreadyExists):
        await h.segments.create(draft("listers", "count(item_listed) >= 1", name="Other"), ACTOR)
    assert (await h.segments.get("listers")).version == 1


async def test_update_needs_the_current_version(h: Harness) -> None:
    """UpdateSegment at the current version bumps it; a stale version is ABORTED
    VERSION_MISMATCH, a missing one INVALID_ARGUMENT, an unknown segment NOT_FOUND.
    """
    await h.segments.create(draft("listers", "count(item_listed) >= 1"), ACTOR)
    h.clock.advance(60)
    updated = await h.segments.update(draft("listers", "count(item_listed, 30d) >= 1", "Recent"), 1, ACTOR)
    assert (updated.version, updated.display_name, updated.time_sensitive) == (2, "Recent", True)
    assert (updated.created_at, updated.updated_at) == (NOW, NOW + timedelta(seconds=60))
    with pytest.raises(Aborted) as stale:
        await h.segments.update(draft("listers", "true"), 1, ACTOR)
    assert (stale.value.reason, stale.value.metadata["current_version"]) == ("VERSION_MISMATCH", "2")
    with pytest.raises(InvalidArgument) as missing:
        await h.segments.update(draft("listers", "true"), 0, ACTOR)
    assert "expected_version" in violations(missing)
    with pytest.raises(NotFound) as unknown:
        await h.segments.update(draft("nobody", "true"), 1, ACTOR)
    assert unknown.value.reason == "SEGMENT_NOT_FOUND"
    assert (await h.segments.get("listers")).canonical_expression == "count(item_listed, 30d) >= 1"


async def test_every_problem_of_a_draft_is_reported_with_its_field_and_column(h: Harness) -> None:
    """A bad id, an overlong description and expression mistakes come back together; the
    expression's carry their column and a suggestion.
    """
    with pytest.raises(InvalidArgument) as caught:
        await h.segments.create(
            SegmentDraft("Bad Id", "x", "d" * 2001, 'regoin == "kanto" and count(item_lsted, 30d) > 1'), ACTOR
        )
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("segment.segment_id", caught.value.violations[0].description),
        ("segment.description", "at most 2000 characters"),
        ("segment.expression", "column 1: unknown attribute 'regoin'; did you mean 'region'?"),
        ("segment.expression", "column 29: unknown event type 'item_lsted'; did you mean 'item_listed'?"),
    ]
    assert "not a segment id" in caught.value.violations[0].description
    with pytest.raises(InvalidArgument) as syntax:
        await h.segments.create(draft("syntax", 'region = "x"'), ACTOR)
    assert violations(syntax) == {"segment.expression": "column 8: unexpected '='; '=' is not an operator; use '=='"}
    with pytest.raises(InvalidArgument) as empty:
        await h.segments.create(draft("empty", None), ACTOR)
    assert list(violations(empty)) == ["segment.expression"]
    assert (await h.segments.list_segments(10)).segments == ()


async def test_structured_problems_name_the_condition_path(h: Harness) -> None:
    """A structured definition's problems are on the path of the offending field."""
    conditions = ConditionGroup(
        GroupOperator.ANY,
        (
            Condition(AttributeCondition("region", Operator.EQ, ("kanto",))),
            Condition(CountCondition("item_listed", timedelta(hours=36), Operator.GE, (1,))),
        ),
    )
    with pytest.raises(InvalidArgument) as caught:
        await h.segments.create(draft("windows", conditions), ACTOR)
    assert violations(caught) == {
        "segment.conditions.conditions[1].count.window": "a window is a whole number of days (24h is 1d), not 36h"
    }


async def test_structured_definition_is_given_back_as_given(h: Harness) -> None:
    """Conditions are stored as given and read back equal, with the canonical expression."""
    await h.segments.create(draft("churned", "last(app_opened) ago > 30d"), ACTOR)
    conditions = ConditionGroup(
        GroupOperator.ALL,
        (
            Condition(AttributeCondition("region", Operator.IN, ("kanto", "kansai"))),
            Condition(CountCondition("item_listed", timedelta(days=30), Operator.GE, (1,))),
            Condition(SegmentCondition("churned"), negate=True),
        ),
    )
    created = await h.segments.create(draft("active-sellers", conditions), ACTOR)
    assert created.definition == conditions
    assert created.canonical_expression == (
        'region in ["kanto", "kansai"] and count(item_listed, 30d) >= 1 and not in_segment("churned")'
    )
    assert (created.time_sensitive, created.event_types) == (True, ("app_opened", "item_listed"))
    assert (await h.segments.get("active-sellers")).definition == conditions


async def test_references_must_exist_and_never_cycle(h: Harness) -> None:
    """An unknown reference is refused at its column; an update that would close a cycle
    through stored segments is refused with the cycle spelled out.
    """
    with pytest.raises(InvalidArgument) as unknown:
        await h.segments.create(draft("loyal", 'true and in_segment("vip")'), ACTOR)
    assert violations(unknown) == {"segment.expression": "column 10: unknown segment 'vip'"}
    await h.segments.create(draft("loyal", "count(payment_captured) >= 3"), ACTOR)
    await h.segments.create(draft("vip", 'in_segment("loyal") and sum(payment_captured.amount) > 10000'), ACTOR)
    with pytest.raises(InvalidArgument) as cycle:
        await h.segments.update(draft("loyal", 'in_segment("vip")'), 1, ACTOR)
    assert violations(cycle) == {"segment.expression": 'column 1: in_segment("vip") makes a cycle: loyal → vip → loyal'}
    with pytest.raises(InvalidArgument) as itself:
        await h.segments.update(draft("loyal", 'in_segment("loyal")'), 1, ACTOR)
    assert "refers to the segment being defined" in violations(itself)["segment.expression"]
    assert (await h.segments.get("loyal")).version == 1


async def test_list_pages_in_id_order(h: Harness) -> None:
    """ListSegments walks every segment in id order, page by page."""
    for segment_id in ["c-seg", "a-seg", "b-seg"]:
        await h.segments.create(draft(segment_id, "true"), ACTOR)
    first = await h.segments.list_segments(2)
    assert ([s.segment_id for s in first.segments], first.next_after) == (["a-seg", "b-seg"], "b-seg")
    rest = await h.segments.list_segments(2, "b-seg")
    assert ([s.segment_id for s in rest.segments], rest.next_after) == (["c-seg"], None)


# Previews.


async def test_preview_evaluates_everyone_and_saves_nothing(h: Harness) -> None:
    """With few users the preview is exact, samples matches in user id order, and
    stores neither a segment nor a member.
    """
    for user in ["usr_a", "usr_b", "usr_c", "usr_d"]:
        await h.track(user, "user_signed_up", region="kanto" if user != "usr_c" else "kansai")
    preview = await h.segments.preview(draft("", 'region == "kanto"'), sample_size=2)
    assert (preview.users_evaluated, preview.users_matched, preview.estimated_size, preview.exact) == (4, 3, 3, True)
    assert preview.sample_user_ids == ("usr_a", "usr_b")
    assert (preview.canonical_expression, preview.evaluated_at) == ('region == "kanto"', NOW)
    assert (await h.segments.list_segments(10)).segments == ()
    assert await h.announcements() == []


async def test_preview_beyond_the_population_limit_samples_and_scales(db: Database) -> None:
    """Beyond ``preview_population`` users a random sample of that many is evaluated and
    the match count scaled to every user.
    """
    clock = FrozenClock(NOW)
    outbox = Outbox(outbox_table, clock=clock)
    h = Harness(db, clock, outbox, Segments(db, clock, DEFAULT_CATALOGUE, outbox, preview_population=10))
    for i in range(30):
        await h.track(f"usr_{i:02d}", "user_signed_up", region="kanto")
    preview = await h.segments.preview(draft("", 'region == "kanto"'))
    assert (preview.users_evaluated, preview.users_matched, preview.estimated_size, preview.exact) == (
        10,
        10,
        30,
        False,
    )
    assert len(set(preview.sample_user_ids)) == 10


async def test_preview_refuses_bad_drafts_and_cycles_through_the_edited_segment(h: Harness) -> None:
    """Previewing an edit of a stored segment reports a cycle back to it; a bad sample
    size is a violation beside the definition's.
    """
    await h.segments.create(draft("base", "count(app_opened) >= 1"), ACTOR)
    await h.segments.create(draft("top", 'in_segment("base")'), ACTOR)
    with pytest.raises(InvalidArgument) as cycle:
        await h.segments.preview(draft("base", 'in_segment("top")'))
    assert violations(cycle) == {"segment.expression": 'column 1: in_segment("top") makes a cycle: base → top → base'}
    with pytest.raises(InvalidArgument) as bad:
        await h.segments.preview(draft("", "count(nope) > 1"), sample_size=101)
    assert set(violations(bad)) == {"sample_size", "segment.expression"}


# Membership.


async def test_real_time_and_batch_agree_after_events(h: Harness) -> None:
    """After a mixed sequence of events, CheckMembership and the materialized membership
    give the same users for every segment, references included.
    """
    await h.segments.create(draft("kanto", 'region == "kanto"'), ACTOR)
    await h.segments.create(draft("sellers", "count(item_listed, 30d) >= 2"), ACTOR)
    await h.segments.create(draft("big-buyers", "sum(payment_captured.amount, 90d) > 10000"), ACTOR)
    await h.segments.create(draft("kanto-sellers", 'in_segment("kanto") and in_segment("sellers")'), ACTOR)
    await h.segments.create(draft("quiet", 'not in_segment("sellers") and count(app_opened) == 0'), ACTOR)
    users = ["usr_a", "usr_b", "usr_c", "usr_d"]
    await h.track("usr_a", "user_signed_up", 40 * DAY, region="kanto")
    await h.track("usr_b", "user_signed_up", 10 * DAY, region="kansai")
    await h.track("usr_c", "app_opened", platform="ios")
    for user in ["usr_a", "usr_b"]:
        await h.track(user, "item_listed", 3 * DAY, item_id="i1", category="books", price=500)
        await h.track(user, "item_listed", 2 * DAY, item_id="i2", category="books", price=700)
    await h.track("usr_a", "item_listed", 45 * DAY, item_id="old", category="books", price=100)
    await h.track("usr_c", "payment_captured", 5 * DAY, payment_id="p1", amount=9000, pay_later=False)
    await h.track("usr_c", "payment_captured", DAY, payment_id="p2", amount=2000, pay_later=True)
    await h.track("usr_b", "profile_updated", region="kanto", timezone="Asia/Tokyo")
    await h.track("usr_d", "app_opened", platform="web")
    await h.assert_agree(["kanto", "sellers", "big-buyers", "kanto-sellers", "quiet"], users)
    assert await h.members("kanto-sellers") == ["usr_a", "usr_b"]
    assert await h.members("big-buyers") == ["usr_c"]
    assert await h.members("quiet") == []


async def test_membership_changes_are_announced_with_their_cause(h: Harness) -> None:
    """Entering and leaving through events names the event; through a definition change
    names none and carries the new version.
    """
    await h.track("usr_a", "user_signed_up", region="kansai")
    await h.segments.create(draft("kanto", 'region == "kanto"'), ACTOR)
    moved = await h.track("usr_a", "profile_updated", region="kanto")
    back = await h.track("usr_a", "profile_updated", region="tohoku")
    await h.segments.update(draft("kanto", 'region != "kanto"'), 1, ACTOR)
    assert await h.announcements() == [
        ("entered", "kanto", "usr_a", 1, moved),
        ("left", "kanto", "usr_a", 1, back),
        ("entered", "kanto", "usr_a", 2, ""),
    ]
    assert await h.members("kanto") == ["usr_a"]


async def test_creation_computes_members_from_existing_facts(h: Harness) -> None:
    """A segment created after the events has its members at once, announced without a cause."""
    await h.track("usr_b", "item_listed", item_id="i", category="toys", price=100)
    await h.track("usr_a", "item_listed", item_id="i", category="toys", price=100)
    await h.track("usr_c", "app_opened", platform="ios")
    await h.segments.create(draft("listers", "count(item_listed) >= 1"), ACTOR)
    assert await h.members("listers") == ["usr_a", "usr_b"]
    assert await h.announcements() == [
        ("entered", "listers", "usr_a", 1, ""),
        ("entered", "listers", "usr_b", 1, ""),
    ]
    counted = await h.segments.count_members("listers")
    assert (counted.count, counted.segment_version, counted.computed_at) == (2, 1, NOW)


async def test_update_recomputes_the_segments_that_refer_to_it(h: Harness) -> None:
    """Redefining a segment changes the membership of every segment built on it."""
    await h.track("usr_a", "user_signed_up", region="kanto")
    await h.track("usr_b", "user_signed_up", region="kansai")
    await h.segments.create(draft("area", 'region == "kanto"'), ACTOR)
    await h.segments.create(draft("outer", 'in_segment("area")'), ACTOR)
    await h.segments.create(draft("outermost", 'not in_segment("outer")'), ACTOR)
    assert await h.members("outermost") == ["usr_b"]
    await h.segments.update(draft("area", 'region == "kansai"'), 1, ACTOR)
    assert await h.members("outer") == ["usr_b"]
    assert await h.members("outermost") == ["usr_a"]
    await h.assert_agree(["area", "outer", "outermost"], ["usr_a", "usr_b"])
    # A new name alone changes no one.
    before = await h.announcements()
    await h.segments.update(draft("area", 'region == "kansai"', name="Kansai"), 2, ACTOR)
    assert await h.announcements() == before


async def test_a_user_marketing_never_saw_is_in_no_segment(h: Harness) -> None:
    """Segments range over users with facts: an unknown user matches nothing, even a
    definition every known user without events would match.
    """
    await h.track("usr_a", "user_signed_up", region="kanto")
    await h.segments.create(draft("never-opened", "count(app_opened) == 0"), ACTOR)
    assert (await h.segments.check_membership("never-opened", "usr_a")).member
    assert not (await h.segments.check_membership("never-opened", "usr_unknown")).member
    assert await h.members("never-opened") == ["usr_a"]
    with pytest.raises(NotFound):
        await h.segments.check_membership("nope", "usr_a")
    with pytest.raises(InvalidArgument) as missing:
        await h.segments.check_membership("", "")
    assert set(violations(missing)) == {"segment_id", "user_id"}


async def test_campaign_hooks_answer_like_check_membership(h: Harness) -> None:
    """`RealTimeMembership` (inside another transaction) answers as CheckMembership does,
    references included, and `segment_exists` knows the stored segments.
    """
    await h.track("usr_a", "user_signed_up", region="kanto")
    await h.track("usr_b", "user_signed_up", region="kansai")
    await h.segments.create(draft("kanto", 'region == "kanto"'), ACTOR)
    await h.segments.create(draft("not-kanto", 'not in_segment("kanto")'), ACTOR)

    def answers(conn: Connection) -> list[tuple[bool, ...]]:
        out = []
        for user in ["usr_a", "usr_b"]:
            facts, _ = facts_store.load(conn, user)
            out.append(tuple(h.segments.membership.is_member(conn, s, facts, NOW) for s in ["kanto", "not-kanto"]))
        assert segment_exists(conn, "kanto")
        assert not segment_exists(conn, "nope")
        assert not h.segments.membership.is_member(conn, "nope", facts, NOW)
        return out

    real_time = [tuple([await h.real_time(s, [u]) == [u] for s in ["kanto", "not-kanto"]]) for u in ["usr_a", "usr_b"]]
    async with h.db.read() as conn:
        hooks = await conn.run_sync(answers)
    assert hooks == real_time == [(True, False), (False, True)]


async def test_refresh_sweeps_what_time_alone_changed(h: Harness) -> None:
    """``signup_age < 14d`` holds in real time only until the 14 days are up; batch keeps
    the member until the sweep, which removes it with no cause, leaves segments that
    cannot drift alone, and records its start as computed_at.
    """
    await h.segments.create(draft("newcomers", "signup_age < 14d"), ACTOR)
    await h.segments.create(draft("kanto", 'region == "kanto"'), ACTOR)
    await h.track("usr_a", "user_signed_up", region="kanto")
    await h.track("usr_b", "user_signed_up", 10 * DAY, region="kanto")
    await h.assert_agree(["newcomers", "kanto"], ["usr_a", "usr_b"])
    h.clock.advance(timedelta(days=5).total_seconds())
    assert await h.real_time("newcomers", ["usr_a", "usr_b"]) == ["usr_a"]
    assert await h.members("newcomers") == ["usr_a", "usr_b"]
    sweep_at = h.clock.now()
    report = await h.segments.refresh(batch=1)
    assert (report.segment_ids, report.users, report.entered, report.left) == (("newcomers",), 2, 0, 1)
    await h.assert_agree(["newcomers", "kanto"], ["usr_a", "usr_b"])
    assert (await h.segments.count_members("newcomers")).computed_at == sweep_at
    assert (await h.segments.count_members("kanto")).computed_at == NOW
    assert (await h.announcements())[-1] == ("left", "newcomers", "usr_b", 1, "")
    everything = await h.segments.refresh(everything=True)
    assert (everything.segment_ids, everything.entered, everything.left) == (("kanto", "newcomers"), 0, 0)


async def test_an_event_also_catches_its_user_up_with_time(h: Harness) -> None:
    """The listener re-evaluates every segment for the event's user, so an unrelated
    event moves them out of a segment whose age condition ran out.
    """
    await h.segments.create(draft("newcomers", "signup_age < 14d"), ACTOR)
    await h.track("usr_a", "user_signed_up", region="kanto")
    h.clock.advance(timedelta(days=20).total_seconds())
    opened = await h.track("usr_a", "app_opened", platform="ios")
    assert await h.members("newcomers") == []
    assert (await h.announcements())[-1] == ("left", "newcomers", "usr_a", 1, opened)


async def test_nothing_to_sweep_without_time_sensitive_segments(h: Harness) -> None:
    """A sweep with no time-sensitive segment touches nothing."""
    await h.segments.create(draft("kanto", 'region == "kanto"'), ACTOR)
    await h.track("usr_a", "user_signed_up", region="kanto")
    report = await h.segments.refresh()
    assert (report.segment_ids, report.users) == ((), 0)


async def test_member_pages_continue_after_the_last_user(h: Harness) -> None:
    """ListSegmentMembers pages in user id order and says when there is no more."""
    for user in ["usr_c", "usr_a", "usr_e", "usr_b", "usr_d"]:
        await h.track(user, "app_opened", platform="ios")
    await h.segments.create(draft("openers", "count(app_opened) >= 1"), ACTOR)
    first = await h.segments.list_members("openers", 3)
    assert (first.user_ids, first.next_after, first.segment_version) == (("usr_a", "usr_b", "usr_c"), "usr_c", 1)
    rest = await h.segments.list_members("openers", 3, "usr_c")
    assert (rest.user_ids, rest.next_after) == (("usr_d", "usr_e"), None)
    with pytest.raises(NotFound):
        await h.segments.list_members("nope", 3)


# Concurrency.


async def test_concurrent_creates_of_one_id_make_one_segment(h: Harness) -> None:
    """Retries racing each other all get the one segment, created once."""
    await h.track("usr_a", "app_opened", platform="ios")
    results = await asyncio.gather(
        *(h.segments.create(draft("openers", "count(app_opened) >= 1"), ACTOR) for _ in range(5))
    )
    assert all(r == results[0] for r in results)
    assert await h.announcements() == [("entered", "openers", "usr_a", 1, "")]


async def test_concurrent_updates_at_one_version_let_one_through(h: Harness) -> None:
    """Of several updates at the same expected version exactly one succeeds."""
    await h.segments.create(draft("target", "true"), ACTOR)
    outcomes = await asyncio.gather(
        *(h.segments.update(draft("target", f"count(app_opened) >= {n}"), 1, ACTOR) for n in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, Aborted) for o in outcomes if isinstance(o, BaseException))
    assert (await h.segments.get("target")).version == 2


async def test_concurrent_updates_cannot_close_a_cycle(h: Harness) -> None:
    """Two updates that each look fine alone (a → b, b → a) cannot both commit."""
    await h.segments.create(draft("seg-a", "true"), ACTOR)
    await h.segments.create(draft("seg-b", "true"), ACTOR)
    outcomes = await asyncio.gather(
        h.segments.update(draft("seg-a", 'in_segment("seg-b")'), 1, ACTOR),
        h.segments.update(draft("seg-b", 'in_segment("seg-a")'), 1, ACTOR),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, InvalidArgument)]
    assert len(refused) == 1
    assert "makes a cycle" in refused[0].violations[0].description


async def test_events_racing_definition_changes_leave_batch_equal_to_real_time(h: Harness) -> None:
    """Events of many users committed while segments are created and redefined leave no
    user evaluated against stale facts or a stale definition.
    """
    users = [f"usr_{i:02d}" for i in range(12)]
    for user in users[::2]:
        await h.track(user, "user_signed_up", region="kanto")
    await h.segments.create(draft("kanto", 'region == "kanto"'), ACTOR)

    async def events() -> None:
        for user in users:
            await h.track(user, "item_listed", item_id="i", category="books", price=100)
            await h.track(user, "profile_updated", region="kansai" if user.endswith(("3", "6")) else "kanto")

    await asyncio.gather(
        events(),
        h.segments.create(draft("listers", "count(item_listed) >= 1"), ACTOR),
        h.segments.update(draft("kanto", 'region == "kanto" and count(item_listed) >= 1'), 1, ACTOR),
        h.segments.create(draft("kanto-listers", 'in_segment("kanto")'), ACTOR),
    )
    await h.assert_agree(["kanto", "listers", "kanto-listers"], users)
    assert len(await h.members("listers")) == 12
