"""User events and the catalogue of what marketing knows about: event types, their
properties, and user attributes.

The catalogue is the vocabulary of the whole marketing domain: `check_event` validates a
tracked event against it, `facts.apply` reads which properties to sum and which
attributes an event sets, and segment expressions may only name what it declares, so a
typo is an error with a suggestion rather than a segment that silently matches nobody.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from libs.errors import FieldViolation

PropertyValue = str | int | bool
"""An event property: amounts are whole minor units, so sums stay exact."""

TRACK = "track"
"""Source of the event types clients send with TrackEvent (the others come from streams)."""

MAX_EVENT_ID_LENGTH = 128
MAX_FUTURE_SKEW = timedelta(minutes=5)
"""How far in the future an event may claim to have happened (clock skew)."""
MAX_PROPERTIES = 50
MAX_STRING_LENGTH = 256

NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""Event types, property names and attribute names: lower_snake_case, at most 64."""
SEGMENT_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "within", "ago"})
"""The segment language's keywords: no attribute or property may be called so."""
_RESERVED = SEGMENT_KEYWORDS | {"signup_age"}


class ValueType(StrEnum):
    """The type of a property, an attribute, or a segment-language value."""

    STRING = "string"
    INT = "int"
    BOOL = "bool"
    TIME = "time"
    DURATION = "duration"


@dataclass(frozen=True, slots=True)
class UserEvent:
    """Something a user did: the unit `facts.apply` folds into the user's facts."""

    event_id: str
    user_id: str
    type: str
    occurred_at: datetime
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    """One event type of the catalogue.

    ``summed`` are the INT properties whose per-day sums the facts keep (what
    ``sum(type.property, window)`` may name); ``sets`` maps a property to the user
    attribute it sets (the latest occurrence wins); ``stamps`` is a TIME attribute set to
    the event's ``occurred_at``.
    """

    name: str
    description: str
    source: str = TRACK
    properties: Mapping[str, ValueType] = field(default_factory=dict)
    summed: frozenset[str] = frozenset()
    sets: Mapping[str, str] = field(default_factory=dict)
    stamps: str | None = None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The event types and user attributes marketing knows, checked for consistency."""

    event_types: Mapping[str, EventTypeSpec]
    attributes: Mapping[str, ValueType]

    def __post_init__(self) -> None:
        problems = catalogue_problems(self)
        if problems:
            raise ValueError("inconsistent catalogue: " + "; ".join(problems))

    def event_type(self, name: str) -> EventTypeSpec | None:
        """The spec of event type ``name``, or None when it is not in the catalogue."""
        return self.event_types.get(name)


def catalogue_problems(catalogue: Catalogue) -> list[str]:
    """What is inconsistent in a catalogue (empty when nothing is): names, sums, attributes."""
    problems: list[str] = []
    for name, attribute_type in catalogue.attributes.items():
        if not NAME.fullmatch(name) or name in _RESERVED:
            problems.append(f"attribute {name!r} is not lower_snake_case or is a reserved word")
        if attribute_type is ValueType.DURATION:
            problems.append(f"attribute {name!r}: durations are derived (signup_age), never stored")
    for key, spec in catalogue.event_types.items():
        where = f"event type {key!r}"
        if key != spec.name or not NAME.fullmatch(key):
            problems.append(f"{where}: its key and name must be the same lower_snake_case name")
        for prop, prop_type in spec.properties.items():
            if not NAME.fullmatch(prop) or prop in SEGMENT_KEYWORDS:
                problems.append(f"{where}: property {prop!r} is not lower_snake_case or is a keyword")
            if prop_type not in (ValueType.STRING, ValueType.INT, ValueType.BOOL):
                problems.append(f"{where}: property {prop!r} must be a string, an int or a bool")
        for prop in sorted(spec.summed):
            if spec.properties.get(prop) is not ValueType.INT:
                problems.append(f"{where}: summed property {prop!r} must be a declared int property")
        for prop, attribute in spec.sets.items():
            if prop not in spec.properties:
                problems.append(f"{where}: sets from undeclared property {prop!r}")
            elif catalogue.attributes.get(attribute) is not spec.properties[prop]:
                problems.append(f"{where}: property {prop!r} sets attribute {attribute!r} of another type")
        if spec.stamps is not None and catalogue.attributes.get(spec.stamps) is not ValueType.TIME:
            problems.append(f"{where}: stamps {spec.stamps!r}, which is not a time attribute")
    return problems


def suggestion(name: str, known: Mapping[str, object] | frozenset[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def value_type(value: object) -> ValueType | None:
    """The `ValueType` of a property value (bool is not an int here), None for others."""
    if isinstance(value, bool):
        return ValueType.BOOL
    if isinstance(value, int):
        return ValueType.INT
    if isinstance(value, str):
        return ValueType.STRING
    return None


def check_event(
    event: UserEvent, catalogue: Catalogue, now: datetime, *, path: str = "event", tracked: bool = True
) -> list[FieldViolation]:
    """Every problem of one event, each on its field path (``event.properties[price]``).

    ``tracked`` events come from TrackEvent and may only have types whose source is
    ``"track"``; events mapped from other services' streams pass ``tracked=False``.
    """
    problems: list[FieldViolation] = []

    def add(sub: str, description: str) -> None:
        problems.append(FieldViolation(f"{path}.{sub}", description))

    if not event.event_id:
        add("event_id", "is required")
    elif len(event.event_id) > MAX_EVENT_ID_LENGTH:
        add("event_id", f"at most {MAX_EVENT_ID_LENGTH} characters")
    if not event.user_id:
        add("user_id", "is required")
    if event.occurred_at.tzinfo is None:
        add("occurred_at", "must carry a time zone")
    elif event.occurred_at > now + MAX_FUTURE_SKEW:
        add("occurred_at", "is more than 5 minutes in the future")
    spec = catalogue.event_type(event.type)
    if not event.type:
        add("type", "is required")
    elif spec is None:
        add("type", f"unknown event type {event.type!r}" + suggestion(event.type, catalogue.event_types))
    elif tracked and spec.source != TRACK:
        add("type", f"{event.type!r} events come from {spec.source}'s stream and cannot be tracked")
    if len(event.properties) > MAX_PROPERTIES:
        add("properties", f"at most {MAX_PROPERTIES} properties")
    for name, value in sorted(event.properties.items()):
        problem = None if spec is None else _property_problem(spec, name, value)
        if problem is not None:
            add(f"properties[{name}]", problem)
    return problems


def _property_problem(spec: EventTypeSpec, name: str, value: object) -> str | None:
    declared = spec.properties.get(name)
    if declared is None:
        known = ", ".join(sorted(spec.properties)) or "none"
        return f"{spec.name!r} has no property {name!r}{suggestion(name, spec.properties)} (properties: {known})"
    actual = value_type(value)
    if actual is not declared:
        return f"must be {_ARTICLE[declared]} {declared.value}, not {_describe(actual)}"
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        return f"at most {MAX_STRING_LENGTH} characters"
    return None


_ARTICLE = {ValueType.STRING: "a", ValueType.INT: "an", ValueType.BOOL: "a"}


def _describe(actual: ValueType | None) -> str:
    return "a value of another type" if actual is None else f"{_ARTICLE[actual]} {actual.value}"


_ATTRIBUTES: dict[str, ValueType] = {
    "signup_at": ValueType.TIME,
    "region": ValueType.STRING,
    "timezone": ValueType.STRING,
    "standing": ValueType.STRING,
}

_EVENT_TYPES = (
    EventTypeSpec(
        "user_signed_up",
        "A user signed up (ID stream).",
        "furima.id",
        {"region": ValueType.STRING},
        sets={"region": "region"},
        stamps="signup_at",
    ),
    EventTypeSpec(
        "profile_updated",
        "A user changed their region or time zone.",
        properties={"region": ValueType.STRING, "timezone": ValueType.STRING},
        sets={"region": "region", "timezone": "timezone"},
    ),
    EventTypeSpec("app_opened", "The user opened the app.", properties={"platform": ValueType.STRING}),
    EventTypeSpec(
        "item_listed",
        "The user listed an item for sale.",
        properties={"item_id": ValueType.STRING, "category": ValueType.STRING, "price": ValueType.INT},
        summed=frozenset({"price"}),
    ),
    EventTypeSpec(
        "payment_captured",
        "A purchase was paid: the buyer's payment was captured (Payments stream).",
        "furima.payments",
        {"payment_id": ValueType.STRING, "amount": ValueType.INT, "pay_later": ValueType.BOOL},
        summed=frozenset({"amount"}),
    ),
    EventTypeSpec(
        "pay_later_used",
        "A captured payment was funded by the buyer's credit line (Payments stream).",
        "furima.payments",
        {"payment_id": ValueType.STRING, "amount": ValueType.INT},
        summed=frozenset({"amount"}),
    ),
    EventTypeSpec(
        "payment_completed",
        "The buyer received the item; the payment completed (Payments stream, buyer).",
        "furima.payments",
        {"payment_id": ValueType.STRING, "amount": ValueType.INT},
        summed=frozenset({"amount"}),
    ),
    EventTypeSpec(
        "sale_completed",
        "The user's sale completed: proceeds were released (Payments stream, seller).",
        "furima.payments",
        {"payment_id": ValueType.STRING, "amount": ValueType.INT},
        summed=frozenset({"amount"}),
    ),
    EventTypeSpec(
        "points_granted",
        "Points were granted to the user (Payments stream).",
        "furima.payments",
        {"campaign_id": ValueType.STRING, "amount": ValueType.INT},
        summed=frozenset({"amount"}),
    ),
    EventTypeSpec(
        "standing_changed",
        "TnS changed the user's standing: GOOD, WARNED, RESTRICTED, SUSPENDED (TnS stream).",
        "furima.tns",
        {"level": ValueType.STRING},
        sets={"level": "standing"},
    ),
)

DEFAULT_CATALOGUE = Catalogue({spec.name: spec for spec in _EVENT_TYPES}, _ATTRIBUTES)
"""The built-in vocabulary: the streams marketing consumes and the common app events."""
