"""Per-user facts, maintained incrementally from events, so segment checks never rescan
a user's history.

For each (user, event type) the facts keep the all-time count, the first and last
occurrence, the all-time sum of each summed property, and per-day buckets of counts and
sums for the last `RETAINED_DAYS` UTC days. Attributes (region, time zone, signup time,
standing...) are kept with the time of the event that set them; the latest wins.

Window precision. Days are UTC calendar days. ``count(..., days=N)`` at ``now`` adds the
buckets of the UTC days ``day(now) - N`` through ``day(now)``: every event of the last N
days (``now - N days <= t <= now``) is counted, and so may be events up to one day
older (the part of day ``day(now) - N`` before ``now``'s time of day). Nothing counted
is older than N + 1 days. Answers are exact to that rule for any ``now`` on or after the
day before the latest event's day (events may be up to a few minutes in the future).

Events older than the kept buckets when they arrive (late backfills) still count in the
totals and first/last occurrence but in no window: they are older than any window could
reach. `apply` is not idempotent: deduplicating by event id is the event log's job.

Everything is plain data (ints, strings, datetimes, dicts), so `to_json` / `from_json`
turn facts into JSON-compatible dicts and back losslessly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.marketing.domain.events import Catalogue, UserEvent, ValueType

AttributeValue = str | int | bool | datetime

MAX_WINDOW_DAYS = 365
"""The longest window a segment may ask for."""
RETAINED_DAYS = MAX_WINDOW_DAYS + 2
"""Day buckets kept per event type: the longest window, today, and one day of clock skew."""

_EPOCH = date(1970, 1, 1)


def day_number(moment: datetime) -> int:
    """The UTC calendar day of ``moment``, as days since 1970-01-01 (aware datetimes only)."""
    if moment.tzinfo is None:
        raise ValueError("facts need timezone-aware datetimes")
    return (moment.astimezone(UTC).date() - _EPOCH).days


def window_days(window: timedelta) -> int:
    """The number of days in a window: a whole number of days, 1 to `MAX_WINDOW_DAYS`."""
    days, rest = divmod(window, timedelta(days=1))
    if rest or not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValueError(f"a window is a whole number of days from 1 to {MAX_WINDOW_DAYS}, got {window}")
    return int(days)


@dataclass(slots=True)
class EventStats:
    """What the facts keep about one event type of one user."""

    count: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    totals: dict[str, int] = field(default_factory=dict)
    """All-time sum per summed property."""
    daily_counts: dict[int, int] = field(default_factory=dict)
    """Day number → events that day (kept days only, no zero entries)."""
    daily_sums: dict[str, dict[int, int]] = field(default_factory=dict)
    """Summed property → day number → sum that day (kept days only)."""


@dataclass(slots=True)
class UserFacts:
    """Everything segments may ask about one user, as of the events applied so far."""

    user_id: str
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    attribute_times: dict[str, datetime] = field(default_factory=dict)
    """When each attribute was set (so a late, older event never overwrites a newer value)."""
    events: dict[str, EventStats] = field(default_factory=dict)
    latest_day: int | None = None
    """The latest day the buckets were brought to (by an event or by `prune`); buckets
    before ``latest_day - RETAINED_DAYS + 1`` are gone.
    """


def apply(facts: UserFacts, event: UserEvent, catalogue: Catalogue) -> None:
    """Fold one event into the user's facts (in place). The event must be valid
    (`check_event`) and of ``facts.user_id``; a type the catalogue lacks is a `ValueError`.
    """
    spec = catalogue.event_type(event.type)
    if spec is None:
        raise ValueError(f"unknown event type {event.type!r}")
    if event.user_id != facts.user_id:
        raise ValueError(f"event of user {event.user_id!r} applied to the facts of {facts.user_id!r}")
    at = event.occurred_at
    day = day_number(at)
    if facts.latest_day is None or day > facts.latest_day:
        prune(facts, day)
    assert facts.latest_day is not None  # set by prune
    kept = day > facts.latest_day - RETAINED_DAYS
    stats = facts.events.setdefault(event.type, EventStats())
    stats.count += 1
    if stats.first_at is None or at < stats.first_at:
        stats.first_at = at
    if stats.last_at is None or at > stats.last_at:
        stats.last_at = at
    if kept:
        stats.daily_counts[day] = stats.daily_counts.get(day, 0) + 1
    for prop in sorted(spec.summed):
        value = event.properties.get(prop)
        if not isinstance(value, int) or isinstance(value, bool):
            continue  # absent (or, defensively, mistyped): adds nothing
        stats.totals[prop] = stats.totals.get(prop, 0) + value
        if kept:
            days = stats.daily_sums.setdefault(prop, {})
            days[day] = days.get(day, 0) + value
    for prop, attribute in spec.sets.items():
        if prop in event.properties:
            set_attribute(facts, attribute, event.properties[prop], at)
    if spec.stamps is not None:
        set_attribute(facts, spec.stamps, at, at)


def set_attribute(facts: UserFacts, name: str, value: AttributeValue, at: datetime) -> bool:
    """Set an attribute unless a value set at a later time is already there; True if set.

    At equal times the later call wins, so replaying events in order is deterministic.
    """
    previous = facts.attribute_times.get(name)
    if previous is not None and at < previous:
        return False
    facts.attributes[name] = value
    facts.attribute_times[name] = at
    return True


def prune(facts: UserFacts, today: int) -> None:
    """Bring the buckets to day ``today`` (a `day_number`): drop those no window can reach.

    `apply` calls it when an event lands on a new latest day; a store may call it for a
    user who has been idle, to keep the facts small. Never moves ``latest_day`` back.
    """
    if facts.latest_day is not None and today <= facts.latest_day:
        return
    facts.latest_day = today
    oldest = today - RETAINED_DAYS + 1
    for stats in facts.events.values():
        stats.daily_counts = {d: n for d, n in stats.daily_counts.items() if d >= oldest}
        for prop, days in stats.daily_sums.items():
            stats.daily_sums[prop] = {d: n for d, n in days.items() if d >= oldest}


def _in_window(buckets: Mapping[int, int], now: datetime, days: int) -> int:
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValueError(f"a window is 1 to {MAX_WINDOW_DAYS} days, got {days}")
    last = day_number(now)
    first = last - days
    return sum(n for d, n in buckets.items() if first <= d <= last)


def count(facts: UserFacts, event_type: str, now: datetime, days: int | None = None) -> int:
    """How many events of ``event_type`` the user had: all time, or in the last ``days``
    days at ``now`` (see the module's note on window precision).
    """
    stats = facts.events.get(event_type)
    if stats is None:
        return 0
    return stats.count if days is None else _in_window(stats.daily_counts, now, days)


def total(facts: UserFacts, event_type: str, prop: str, now: datetime, days: int | None = None) -> int:
    """The sum of summed property ``prop`` over the user's ``event_type`` events: all
    time, or in the last ``days`` days at ``now``.
    """
    stats = facts.events.get(event_type)
    if stats is None:
        return 0
    if days is None:
        return stats.totals.get(prop, 0)
    return _in_window(stats.daily_sums.get(prop, {}), now, days)


def first_at(facts: UserFacts, event_type: str) -> datetime | None:
    """When the user's first ``event_type`` event happened, or None if it never did."""
    stats = facts.events.get(event_type)
    return None if stats is None else stats.first_at


def last_at(facts: UserFacts, event_type: str) -> datetime | None:
    """When the user's latest ``event_type`` event happened, or None if it never did."""
    stats = facts.events.get(event_type)
    return None if stats is None else stats.last_at


def attribute(facts: UserFacts, name: str) -> AttributeValue | None:
    """The user's attribute ``name``, or None when it was never set."""
    return facts.attributes.get(name)


# Serialization: JSON-compatible dicts (day numbers become string keys, datetimes ISO
# 8601 strings, attribute values carry their type).


def to_document(facts: UserFacts) -> dict[str, Any]:
    """The facts as a document for a JSON encoder that writes datetimes in ISO 8601 and
    int keys as strings (orjson with ``OPT_NON_STR_KEYS``): what `to_json` gives, without
    converting anything in Python first (the store writes a batch's facts with it).
    """
    return {
        "user_id": facts.user_id,
        "latest_day": facts.latest_day,
        "attributes": {
            name: [_attribute_type(value).value, _encode(value), facts.attribute_times[name]]
            for name, value in facts.attributes.items()
        },
        "events": {
            name: {
                "count": stats.count,
                "first_at": stats.first_at,
                "last_at": stats.last_at,
                "totals": stats.totals,
                "daily_counts": stats.daily_counts,
                "daily_sums": stats.daily_sums,
            }
            for name, stats in facts.events.items()
        },
    }


def to_json(facts: UserFacts) -> dict[str, Any]:
    """The facts as a JSON-compatible dict (keys sorted); `from_json` reads it back unchanged."""
    jsonable = _jsonable(to_document(facts))
    assert isinstance(jsonable, dict)
    return jsonable


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def from_json(data: Mapping[str, Any]) -> UserFacts:
    """Facts from what `to_json` wrote."""
    facts = UserFacts(str(data["user_id"]), latest_day=data["latest_day"])
    for name, (kind, value, at) in data["attributes"].items():
        facts.attributes[name] = _decode(ValueType(kind), value)
        facts.attribute_times[name] = datetime.fromisoformat(at)
    for name, stats in data["events"].items():
        facts.events[name] = EventStats(
            count=int(stats["count"]),
            first_at=_time(stats["first_at"]),
            last_at=_time(stats["last_at"]),
            totals={p: int(v) for p, v in stats["totals"].items()},
            daily_counts={int(d): int(n) for d, n in stats["daily_counts"].items()},
            daily_sums={p: {int(d): int(n) for d, n in days.items()} for p, days in stats["daily_sums"].items()},
        )
    return facts


def _attribute_type(value: AttributeValue) -> ValueType:
    if isinstance(value, bool):
        return ValueType.BOOL
    if isinstance(value, int):
        return ValueType.INT
    if isinstance(value, datetime):
        return ValueType.TIME
    return ValueType.STRING


def _encode(value: AttributeValue) -> str | int | bool:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode(kind: ValueType, value: str | int | bool) -> AttributeValue:
    if kind is ValueType.TIME:
        return datetime.fromisoformat(str(value))
    return value


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
