"""Per-user facts: counts, sums, first/last occurrence and attributes maintained event by
event agree with a brute-force scan of the history, windows are exact to the UTC day
bucket, old buckets are dropped, and facts survive a JSON round trip.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.marketing.domain import facts
from services.marketing.domain.events import Catalogue, EventTypeSpec, UserEvent, ValueType
from services.marketing.domain.facts import MAX_WINDOW_DAYS, RETAINED_DAYS, UserFacts
from services.marketing.store import facts as facts_store

NOW = datetime(2026, 7, 1, 15, 30, tzinfo=UTC)
DAY = timedelta(days=1)

CATALOGUE = Catalogue(
    {
        "item_listed": EventTypeSpec(
            "item_listed", "listed", properties={"price": ValueType.INT}, summed=frozenset({"price"})
        ),
        "purchase": EventTypeSpec(
            "purchase",
            "bought",
            properties={"amount": ValueType.INT, "points": ValueType.INT},
            summed=frozenset({"amount", "points"}),
        ),
        "app_opened": EventTypeSpec("app_opened", "opened"),
        "signed_up": EventTypeSpec(
            "signed_up",
            "signed up",
            properties={"region": ValueType.STRING},
            sets={"region": "region"},
            stamps="signup_at",
        ),
        "moved": EventTypeSpec("moved", "moved", properties={"region": ValueType.STRING}, sets={"region": "region"}),
    },
    {"region": ValueType.STRING, "signup_at": ValueType.TIME},
)

_ids = iter(range(10**9))


def event(kind: str, at: datetime, **properties: str | int | bool) -> UserEvent:
    return UserEvent(f"e{next(_ids)}", "u1", kind, at, properties)


def facts_of(*events: UserEvent) -> UserFacts:
    user = UserFacts("u1")
    for e in events:
        facts.apply(user, e, CATALOGUE)
    return user


def test_counts_sums_first_and_last() -> None:
    """Totals, per-property sums, first and latest time, whatever the arrival order."""
    user = facts_of(
        event("purchase", NOW - 2 * DAY, amount=1000, points=10),
        event("purchase", NOW - 40 * DAY, amount=500),
        event("purchase", NOW - 1 * DAY, amount=250, points=5),
    )
    assert facts.count(user, "purchase", NOW) == 3
    assert facts.total(user, "purchase", "amount", NOW) == 1750
    assert facts.total(user, "purchase", "points", NOW) == 15
    assert facts.first_at(user, "purchase") == NOW - 40 * DAY
    assert facts.last_at(user, "purchase") == NOW - DAY
    assert facts.count(user, "purchase", NOW, 30) == 2
    assert facts.total(user, "purchase", "amount", NOW, 30) == 1250


def test_nothing_known_is_zero_or_none() -> None:
    """A type the user never had counts 0, sums 0, and has no first or last time."""
    user = UserFacts("u1")
    assert facts.count(user, "purchase", NOW) == 0
    assert facts.count(user, "purchase", NOW, 7) == 0
    assert facts.total(user, "purchase", "amount", NOW, 7) == 0
    assert facts.first_at(user, "purchase") is None
    assert facts.last_at(user, "purchase") is None
    assert facts.attribute(user, "region") is None


def test_window_covers_the_last_n_days_and_at_most_one_more() -> None:
    """``N`` days = UTC days day(now)-N .. day(now): everything younger than N days, nothing N+1 days old."""
    start_of_oldest_day = datetime(2026, 6, 24, 0, 0, tzinfo=UTC)  # day(NOW) - 7
    user = facts_of(
        event("app_opened", NOW - 7 * DAY),  # exactly 7 days ago: in
        event("app_opened", start_of_oldest_day),  # 7 days 15.5 hours ago, same bucket: in
        event("app_opened", start_of_oldest_day - timedelta(microseconds=1)),  # previous day: out
        event("app_opened", NOW + timedelta(hours=3)),  # later today (skew): in
    )
    assert facts.count(user, "app_opened", NOW, 7) == 3
    assert facts.count(user, "app_opened", NOW, 8) == 4


def test_one_day_window_is_today_and_yesterday() -> None:
    """``1d`` spans yesterday and today (UTC): at least 24 hours, less than 48."""
    user = facts_of(
        event("app_opened", datetime(2026, 6, 30, 0, 0, tzinfo=UTC)),
        event("app_opened", datetime(2026, 6, 29, 23, 59, tzinfo=UTC)),
    )
    assert facts.count(user, "app_opened", NOW, 1) == 1


def test_windows_must_be_between_one_day_and_the_maximum() -> None:
    """0 days and more than 365 days are programming errors at this layer."""
    user = facts_of(event("app_opened", NOW))
    with pytest.raises(ValueError, match="1 to 365"):
        facts.count(user, "app_opened", NOW, 0)
    with pytest.raises(ValueError, match="1 to 365"):
        facts.total(user, "app_opened", "x", NOW, MAX_WINDOW_DAYS + 1)


def test_window_days_accepts_only_whole_days() -> None:
    """`window_days` turns 24h into 1 and refuses 36h, 0 and 366d."""
    assert facts.window_days(timedelta(hours=24)) == 1
    assert facts.window_days(timedelta(days=365)) == 365
    for bad in (timedelta(hours=36), timedelta(0), timedelta(days=366), -DAY):
        with pytest.raises(ValueError, match="whole number of days"):
            facts.window_days(bad)


def test_old_buckets_are_dropped_but_totals_stay() -> None:
    """Buckets older than any window are pruned as days pass; totals and first/last remain."""
    user = facts_of(event("purchase", NOW - 500 * DAY, amount=7), event("purchase", NOW, amount=3))
    stats = user.events["purchase"]
    assert len(stats.daily_counts) == 1
    assert list(stats.daily_sums["amount"]) == [facts.day_number(NOW)]
    assert facts.count(user, "purchase", NOW) == 2
    assert facts.total(user, "purchase", "amount", NOW) == 10
    assert facts.count(user, "purchase", NOW, MAX_WINDOW_DAYS) == 1
    assert facts.first_at(user, "purchase") == NOW - 500 * DAY


def test_late_backfill_older_than_the_buckets_counts_only_in_totals() -> None:
    """An event that arrives after its day's bucket was dropped adds to totals, not windows."""
    user = facts_of(event("purchase", NOW, amount=3))
    facts.apply(user, event("purchase", NOW - 400 * DAY, amount=5), CATALOGUE)
    assert facts.count(user, "purchase", NOW) == 2
    assert facts.total(user, "purchase", "amount", NOW) == 8
    assert facts.total(user, "purchase", "amount", NOW, MAX_WINDOW_DAYS) == 3
    assert len(user.events["purchase"].daily_counts) == 1


def test_prune_brings_idle_facts_forward() -> None:
    """A store may prune an idle user's facts to today: old buckets go, answers do not change."""
    user = facts_of(event("purchase", NOW - 200 * DAY, amount=4), event("purchase", NOW - 10 * DAY, amount=6))
    later = NOW + 300 * DAY
    before = facts.total(user, "purchase", "amount", later, MAX_WINDOW_DAYS)
    facts.prune(user, facts.day_number(later))
    assert user.events["purchase"].daily_counts == {facts.day_number(NOW - 10 * DAY): 1}
    assert facts.total(user, "purchase", "amount", later, MAX_WINDOW_DAYS) == before == 6
    facts.prune(user, facts.day_number(NOW))  # never moves back
    assert user.latest_day == facts.day_number(later)


def test_attributes_latest_occurrence_wins() -> None:
    """An attribute takes the value of its latest event, even when an older one arrives later."""
    user = facts_of(
        event("signed_up", NOW - 30 * DAY, region="kanto"),
        event("moved", NOW - 2 * DAY, region="kansai"),
        event("moved", NOW - 10 * DAY, region="tohoku"),  # late and older: ignored
    )
    assert facts.attribute(user, "region") == "kansai"
    assert facts.attribute(user, "signup_at") == NOW - 30 * DAY


def test_set_attribute_ties_go_to_the_later_call() -> None:
    """At the same time the later write wins, so an in-order replay is deterministic."""
    user = UserFacts("u1")
    assert facts.set_attribute(user, "region", "a", NOW)
    assert facts.set_attribute(user, "region", "b", NOW)
    assert not facts.set_attribute(user, "region", "c", NOW - DAY)
    assert facts.attribute(user, "region") == "b"


def test_apply_refuses_unknown_types_and_other_users() -> None:
    """Events are validated before they reach the facts; a mismatch is a programming error."""
    user = UserFacts("u1")
    with pytest.raises(ValueError, match="unknown event type"):
        facts.apply(user, event("nope", NOW), CATALOGUE)
    with pytest.raises(ValueError, match="applied to the facts"):
        facts.apply(user, UserEvent("x", "u2", "app_opened", NOW), CATALOGUE)
    with pytest.raises(ValueError, match="timezone-aware"):
        facts.day_number(datetime(2026, 1, 1))  # naive: the point of the test


def test_missing_summed_property_adds_nothing() -> None:
    """An event without a summed property still counts; its sum is unchanged."""
    user = facts_of(event("purchase", NOW, amount=5), event("purchase", NOW))
    assert facts.count(user, "purchase", NOW, 1) == 2
    assert facts.total(user, "purchase", "amount", NOW, 1) == 5
    assert facts.total(user, "purchase", "points", NOW, 1) == 0


def test_json_round_trip() -> None:
    """`to_json` is JSON-serializable and `from_json` gives back equal facts."""
    user = facts_of(
        event("signed_up", NOW - 3 * DAY, region="kanto"),
        event("purchase", NOW - DAY, amount=100, points=1),
        event("app_opened", NOW),
    )
    user.attributes["vip"] = True
    user.attribute_times["vip"] = NOW
    user.attributes["tier"] = 3
    user.attribute_times["tier"] = NOW
    text = json.dumps(facts.to_json(user))
    assert facts.from_json(json.loads(text)) == user


def test_stored_text_is_the_json_form() -> None:
    """What the store writes (orjson over `to_document`) decodes to exactly `to_json`,
    datetimes, day-number keys and a time-valued attribute included.
    """
    user = facts_of(
        event("signed_up", NOW - 3 * DAY, region="kanto"),
        event("purchase", NOW - DAY, amount=100, points=1),
        event("purchase", NOW.replace(microsecond=0), amount=7),
    )
    user.attributes["vip_since"] = NOW - DAY
    user.attribute_times["vip_since"] = NOW
    stored = facts_store.dumps(user)
    assert json.loads(stored) == facts.to_json(user)
    assert facts.from_json(json.loads(stored)) == user


# Incremental aggregates against a brute-force scan.

_TYPES = ("item_listed", "purchase", "app_opened")
_SPAN_SECONDS = 800 * 86400


@st.composite
def histories(draw: st.DrawFn) -> list[UserEvent]:
    size = draw(st.integers(0, 60))
    events = []
    for i in range(size):
        kind = draw(st.sampled_from(_TYPES))
        at = NOW - timedelta(seconds=draw(st.integers(0, _SPAN_SECONDS)), microseconds=draw(st.integers(0, 999_999)))
        props: dict[str, str | int | bool] = {}
        if kind == "item_listed":
            props["price"] = draw(st.integers(-10_000, 10**9))
        elif kind == "purchase" and draw(st.booleans()):
            props["amount"] = draw(st.integers(0, 10**7))
        events.append(UserEvent(f"h{i}", "u1", kind, at, props))
    return events


def _naive_count(events: list[UserEvent], kind: str, now: datetime, days: int | None) -> int:
    return sum(1 for e in events if e.type == kind and _in(e.occurred_at, now, days))


def _naive_total(events: list[UserEvent], kind: str, prop: str, now: datetime, days: int | None) -> int:
    return sum(int(e.properties.get(prop, 0)) for e in events if e.type == kind and _in(e.occurred_at, now, days))


def _in(at: datetime, now: datetime, days: int | None) -> bool:
    """The documented rule, from dates directly: the UTC date of ``at`` within N days of ``now``'s."""
    if days is None:
        return True
    gap = (now.astimezone(UTC).date() - at.astimezone(UTC).date()).days
    return 0 <= gap <= days


@settings(max_examples=100, deadline=None)
@given(
    history=histories(),
    seed=st.integers(0, 2**32),
    offset_hours=st.integers(-20, 24 * 400),
    windows=st.lists(st.one_of(st.none(), st.integers(1, MAX_WINDOW_DAYS)), min_size=1, max_size=6),
)
def test_incremental_aggregates_match_a_scan(
    history: list[UserEvent], seed: int, offset_hours: int, windows: list[int | None]
) -> None:
    """Applied in any order, the facts answer every window like a scan of all events does
    (for any ``now`` from 20 hours before the latest event onwards).
    """
    shuffled = list(history)
    random.Random(seed).shuffle(shuffled)
    user = facts_of(*shuffled)
    latest = max((e.occurred_at for e in history), default=NOW)
    now = latest + timedelta(hours=offset_hours)
    for kind in _TYPES:
        times = [e.occurred_at for e in history if e.type == kind]
        assert facts.first_at(user, kind) == min(times, default=None)
        assert facts.last_at(user, kind) == max(times, default=None)
        for days in windows:
            assert facts.count(user, kind, now, days) == _naive_count(history, kind, now, days)
    for days in windows:
        assert facts.total(user, "item_listed", "price", now, days) == _naive_total(
            history, "item_listed", "price", now, days
        )
        assert facts.total(user, "purchase", "amount", now, days) == _naive_total(
            history, "purchase", "amount", now, days
        )
    for stats in user.events.values():
        assert all(day > user.latest_day - RETAINED_DAYS for day in stats.daily_counts)  # type: ignore[operator]
        assert 0 not in stats.daily_counts.values()


@settings(max_examples=50, deadline=None)
@given(history=histories())
def test_json_round_trip_of_any_history(history: list[UserEvent]) -> None:
    """Whatever the history, the JSON form reads back to equal facts."""
    user = facts_of(*history)
    assert facts.from_json(json.loads(json.dumps(facts.to_json(user)))) == user
    assert json.loads(facts_store.dumps(user)) == facts.to_json(user)
