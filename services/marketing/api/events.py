"""EventService servicer: TrackEvent, TrackEvents, GetCatalogue.

Events are facts about users that segments and campaigns act on, so only services
record them: a user token is refused whatever its scopes. The catalogue describes no
user, so any caller the method rule admits may read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import grpc
from furima.marketing.v1 import event_service_pb2 as pb
from furima.marketing.v1 import event_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import FieldViolation, InvalidArgument, PermissionDenied, Violations
from services.marketing.domain.events import Catalogue, PropertyValue, UserEvent, ValueType
from services.marketing.domain.segments_ast import SIGNUP_AGE
from services.marketing.service.events import EventIntake

Context = grpc.aio.ServicerContext[Any, Any]

EVENT_SERVICE = pb.DESCRIPTOR.services_by_name["EventService"]
register_events = pb_grpc.add_EventServiceServicer_to_server

VALUE_TYPE_TO_PB = {
    ValueType.STRING: pb.VALUE_TYPE_STRING,
    ValueType.INT: pb.VALUE_TYPE_INT,
    ValueType.BOOL: pb.VALUE_TYPE_BOOL,
    ValueType.TIME: pb.VALUE_TYPE_TIME,
    ValueType.DURATION: pb.VALUE_TYPE_DURATION,
}

_SIGNUP_AT = "signup_at"
"""The time attribute the derived ``signup_age`` measures (as the segment language does)."""
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""Stands in for a missing or invalid time while the rest of a request is converted (the
request is refused anyway).
"""


class EventServicer(pb_grpc.EventServiceServicer):
    """Event intake for services, and the catalogue."""

    def __init__(self, intake: EventIntake, catalogue: Catalogue) -> None:
        self._intake = intake
        self._catalogue = catalogue_pb(catalogue)

    async def TrackEvent(self, request: pb.TrackEventRequest, context: Context) -> pb.TrackEventResponse:
        """Record one event; a duplicate says so."""
        _require_service()
        if not request.HasField("event"):
            raise InvalidArgument("the event is missing", [FieldViolation("event", "is required")])
        result = await self._intake.track_one(user_events([request.event], single=True)[0])
        return pb.TrackEventResponse(duplicate=result.duplicate)

    async def TrackEvents(self, request: pb.TrackEventsRequest, context: Context) -> pb.TrackEventsResponse:
        """Record a batch, all or nothing; duplicates are listed."""
        _require_service()
        results = await self._intake.track(user_events(request.events))
        return pb.TrackEventsResponse(
            recorded=sum(not r.duplicate for r in results),
            duplicate_event_ids=[r.event_id for r in results if r.duplicate],
        )

    async def GetCatalogue(self, request: pb.GetCatalogueRequest, context: Context) -> pb.GetCatalogueResponse:
        """The event types and user attributes (built once: the catalogue is fixed)."""
        return self._catalogue


def _require_service() -> None:
    if current_principal().is_user:
        raise PermissionDenied(
            "events are recorded by services, not with a user's token", reason="SERVICE_TOKEN_REQUIRED"
        )


def user_events(messages: Iterable[pb.UserEvent], *, single: bool = False) -> list[UserEvent]:
    """The domain events of a request. What only the wire can get wrong (no time, a time
    out of range, a property without a value) is INVALID_ARGUMENT here, on ``event.*``
    (``single``) or ``events[i].*``; the catalogue's checks are the intake's.
    """
    problems = Violations()
    events = [
        _user_event(message, "event" if single else f"events[{i}]", problems) for i, message in enumerate(messages)
    ]
    problems.raise_if_any("the request has invalid events; none was recorded")
    return events


def _user_event(message: pb.UserEvent, path: str, problems: Violations) -> UserEvent:
    occurred_at = _NO_TIME
    if not message.HasField("occurred_at"):
        problems.add(f"{path}.occurred_at", "is required")
    else:
        try:
            occurred_at = message.occurred_at.ToDatetime(tzinfo=UTC)
        except ValueError:
            problems.add(f"{path}.occurred_at", "is not a valid time (years 1 to 9999, nanos below 10^9)")
    properties: dict[str, PropertyValue] = {}
    for name, value in sorted(message.properties.items()):
        kind = value.WhichOneof("value")
        if kind == "string_value":
            properties[name] = value.string_value
        elif kind == "int_value":
            properties[name] = value.int_value
        elif kind == "bool_value":
            properties[name] = value.bool_value
        else:
            problems.add(f"{path}.properties[{name}]", "has no value: set string_value, int_value or bool_value")
    return UserEvent(message.event_id, message.user_id, message.type, occurred_at, properties)


def catalogue_pb(catalogue: Catalogue) -> pb.GetCatalogueResponse:
    """The catalogue on the wire: event types and attributes by name, and the derived
    ``signup_age`` when the catalogue has ``signup_at``.
    """
    event_types = [
        pb.EventType(
            name=spec.name,
            description=spec.description,
            source=spec.source,
            properties=[
                pb.EventProperty(
                    name=name,
                    type=VALUE_TYPE_TO_PB[kind],
                    summed=name in spec.summed,
                    sets_attribute=spec.sets.get(name, ""),
                )
                for name, kind in sorted(spec.properties.items())
            ],
            stamps_attribute=spec.stamps or "",
        )
        for _, spec in sorted(catalogue.event_types.items())
    ]
    attributes = [
        pb.UserAttribute(name=name, type=VALUE_TYPE_TO_PB[kind], description=_attribute_description(catalogue, name))
        for name, kind in sorted(catalogue.attributes.items())
    ]
    if catalogue.attributes.get(_SIGNUP_AT) is ValueType.TIME:
        attributes.append(
            pb.UserAttribute(
                name=SIGNUP_AGE,
                type=pb.VALUE_TYPE_DURATION,
                description=f"how long ago the user signed up ({_SIGNUP_AT} ago); derived",
            )
        )
    return pb.GetCatalogueResponse(event_types=event_types, attributes=attributes)


def _attribute_description(catalogue: Catalogue, name: str) -> str:
    """Which events set the attribute (the latest occurrence wins)."""
    setters = [
        f"{spec.name}.{prop}"
        for _, spec in sorted(catalogue.event_types.items())
        for prop, attribute in sorted(spec.sets.items())
        if attribute == name
    ]
    setters += [f"{spec.name} (its time)" for _, spec in sorted(catalogue.event_types.items()) if spec.stamps == name]
    return "set by " + ", ".join(setters) if setters else "set by no event type"
