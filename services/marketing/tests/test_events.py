"""The event catalogue: tracked events are checked field by field against it, and an
inconsistent catalogue is refused when it is built.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.errors import FieldViolation
from services.marketing.domain.events import (
    DEFAULT_CATALOGUE,
    Catalogue,
    EventTypeSpec,
    UserEvent,
    ValueType,
    check_event,
)

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_a_valid_tracked_event_has_no_problems() -> None:
    """An app event of a trackable type with declared properties passes."""
    event = UserEvent("evt_1", "usr_1", "item_listed", NOW, {"item_id": "i1", "category": "books", "price": 1200})
    assert check_event(event, DEFAULT_CATALOGUE, NOW) == []


def test_every_problem_is_reported_on_its_path() -> None:
    """Missing ids, unknown types, undeclared or mistyped properties: one violation each."""
    event = UserEvent("", "", "item_lsted", NOW + timedelta(minutes=6), {"price": "12"})
    assert check_event(event, DEFAULT_CATALOGUE, NOW, path="events[3]") == [
        FieldViolation("events[3].event_id", "is required"),
        FieldViolation("events[3].user_id", "is required"),
        FieldViolation("events[3].occurred_at", "is more than 5 minutes in the future"),
        FieldViolation("events[3].type", "unknown event type 'item_lsted'; did you mean 'item_listed'?"),
    ]


def test_property_problems() -> None:
    """Properties must be declared for the type, of its declared type, and not too long."""
    event = UserEvent("e", "u", "item_listed", NOW, {"price": True, "colour": "red", "category": "x" * 300})
    assert check_event(event, DEFAULT_CATALOGUE, NOW) == [
        FieldViolation("event.properties[category]", "at most 256 characters"),
        FieldViolation(
            "event.properties[colour]",
            "'item_listed' has no property 'colour' (properties: category, item_id, price)",
        ),
        FieldViolation("event.properties[price]", "must be an int, not a bool"),
    ]


def test_stream_types_cannot_be_tracked() -> None:
    """Facts about money and accounts come only from the owning service's stream."""
    event = UserEvent("e", "u", "payment_captured", NOW, {"amount": 100})
    assert check_event(event, DEFAULT_CATALOGUE, NOW) == [
        FieldViolation(
            "event.type", "'payment_captured' events come from furima.payments's stream and cannot be tracked"
        )
    ]
    assert check_event(event, DEFAULT_CATALOGUE, NOW, tracked=False) == []


def test_a_type_is_required_and_properties_are_limited() -> None:
    """An empty type is "required", and at most 50 properties are accepted."""
    event = UserEvent("e", "u", "", NOW, {f"p{i}": i for i in range(51)})
    assert check_event(event, DEFAULT_CATALOGUE, NOW) == [
        FieldViolation("event.type", "is required"),
        FieldViolation("event.properties", "at most 50 properties"),
    ]


def test_naive_times_and_long_ids_are_refused() -> None:
    """Times need a zone; ids have a length limit."""
    event = UserEvent("x" * 129, "u", "app_opened", NOW.replace(tzinfo=None))
    assert check_event(event, DEFAULT_CATALOGUE, NOW) == [
        FieldViolation("event.event_id", "at most 128 characters"),
        FieldViolation("event.occurred_at", "must carry a time zone"),
    ]


def test_an_inconsistent_catalogue_is_refused() -> None:
    """Summing a non-int, setting an attribute of another type, stamping a non-time, keywords as names."""
    with pytest.raises(ValueError, match="inconsistent catalogue") as raised:
        Catalogue(
            {
                "bad": EventTypeSpec(
                    "bad",
                    "",
                    properties={"label": ValueType.STRING, "in": ValueType.INT, "at": ValueType.TIME},
                    summed=frozenset({"label"}),
                    sets={"label": "tier", "missing": "region"},
                    stamps="region",
                ),
                "Other": EventTypeSpec("other", ""),
            },
            {"region": ValueType.STRING, "tier": ValueType.INT, "and": ValueType.BOOL, "age": ValueType.DURATION},
        )
    message = str(raised.value)
    for expected in (
        "attribute 'and' is not lower_snake_case or is a reserved word",
        "attribute 'age': durations are derived",
        "property 'in' is not lower_snake_case or is a keyword",
        "property 'at' must be a string, an int or a bool",
        "summed property 'label' must be a declared int property",
        "property 'label' sets attribute 'tier' of another type",
        "sets from undeclared property 'missing'",
        "stamps 'region', which is not a time attribute",
        "event type 'Other': its key and name must be the same",
    ):
        assert expected in message


def test_the_default_catalogue_covers_the_consumed_streams() -> None:
    """ID, Payments and TnS streams each map to catalogue types that set the documented attributes."""
    sources = {spec.source for spec in DEFAULT_CATALOGUE.event_types.values()}
    assert sources == {"track", "furima.id", "furima.payments", "furima.tns"}
    assert DEFAULT_CATALOGUE.event_types["user_signed_up"].stamps == "signup_at"
    assert DEFAULT_CATALOGUE.event_types["standing_changed"].sets == {"level": "standing"}
