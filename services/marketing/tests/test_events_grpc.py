"""EventService over a real gRPC server: who may call it, request conversion and field
violations, idempotent tracking, and the catalogue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from furima.marketing.v1 import event_service_pb2 as pb
from furima.marketing.v1 import event_service_pb2_grpc as pb_grpc

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import FrozenClock
from libs.events import Outbox
from libs.pb import timestamp
from libs.rpc import GrpcServer, ServerConfig, error_details, make_channel
from libs.storage import Database
from libs.testing import Forger, claims
from services.marketing.api.events import EVENT_SERVICE, EventServicer, register_events
from services.marketing.domain import facts as facts_domain
from services.marketing.domain.events import DEFAULT_CATALOGUE
from services.marketing.service.events import EventIntake
from services.marketing.store import facts as facts_repo
from services.marketing.store.tables import outbox

NOW = datetime.now(UTC).replace(microsecond=0)
AUDIENCE = "furima.marketing"


@pytest.fixture
def key() -> Forger:
    """Provide the key tokens are signed with."""
    return Forger(kid="k1")


@pytest.fixture
async def stub(db: Database, key: Forger) -> AsyncIterator[pb_grpc.EventServiceStub]:
    """Provide a stub of an EventService server on a free port."""
    intake = EventIntake(db, FrozenClock(NOW), DEFAULT_CATALOGUE, Outbox(outbox), [])
    verifier = TokenVerifier("furima-id", AUDIENCE, StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = GrpcServer(service_name=AUDIENCE, config=ServerConfig(port=0), verifier=verifier)
    server.add(register_events, EventServicer(intake, DEFAULT_CATALOGUE), EVENT_SERVICE)
    await server.start()
    async with make_channel(server.address, services=[EVENT_SERVICE]) as channel:
        yield pb_grpc.EventServiceStub(channel)
    await server.stop(0)


def bearer(key: Forger, scope: str = "marketing.events.write", subject: str = "svc-app") -> list[tuple[str, str]]:
    """Call metadata with a token for marketing (a service's own token unless ``subject`` is a user)."""
    token = key.sign(claims(scope=scope, audience=[AUDIENCE], subject=subject, client_id="svc-app"))
    return [("authorization", f"Bearer {token}")]


def listed(event_id: str, price: int = 1200, **changes: object) -> pb.UserEvent:
    """An item_listed event on the wire."""
    fields: dict[str, object] = {
        "event_id": event_id,
        "user_id": "usr_a",
        "type": "item_listed",
        "occurred_at": timestamp(NOW - timedelta(minutes=1)),
        "properties": {"item_id": pb.PropertyValue(string_value="i1"), "price": pb.PropertyValue(int_value=price)},
    }
    fields.update(changes)
    return pb.UserEvent(**fields)


async def failure(call: object) -> dict[str, object]:
    """The decoded status of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return error_details(info.value)


async def test_track_event_records_once_and_reports_duplicates(
    stub: pb_grpc.EventServiceStub, key: Forger, db: Database
) -> None:
    """A new event is recorded; the same again is a duplicate; the batch lists its duplicates."""
    md = bearer(key)
    first = await stub.TrackEvent(pb.TrackEventRequest(event=listed("e1")), metadata=md)
    again = await stub.TrackEvent(pb.TrackEventRequest(event=listed("e1")), metadata=md)
    assert (first.duplicate, again.duplicate) == (False, True)
    batch = await stub.TrackEvents(pb.TrackEventsRequest(events=[listed("e1"), listed("e2", 800)]), metadata=md)
    assert (batch.recorded, list(batch.duplicate_event_ids)) == (1, ["e1"])
    async with db.read() as conn:
        facts, _ = await conn.run_sync(lambda c: facts_repo.load(c, "usr_a"))
    assert facts_domain.total(facts, "item_listed", "price", NOW) == 2000


async def test_access_rules(stub: pb_grpc.EventServiceStub, key: Forger) -> None:
    """No token: UNAUTHENTICATED; another scope or a user's token: PERMISSION_DENIED."""
    request = pb.TrackEventRequest(event=listed("e1"))
    assert (await failure(stub.TrackEvent(request)))["code"] == grpc.StatusCode.UNAUTHENTICATED
    wrong_scope = await failure(stub.TrackEvent(request, metadata=bearer(key, "marketing.write")))
    assert wrong_scope["code"] == grpc.StatusCode.PERMISSION_DENIED
    for call in (
        stub.TrackEvent(request, metadata=bearer(key, subject="usr_a")),
        stub.TrackEvents(pb.TrackEventsRequest(events=[listed("e1")]), metadata=bearer(key, subject="usr_a")),
    ):
        refused = await failure(call)
        assert (refused["code"], refused["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "SERVICE_TOKEN_REQUIRED")
    catalogue = await stub.GetCatalogue(pb.GetCatalogueRequest(), metadata=bearer(key, "marketing.read", "usr_a"))
    assert catalogue.event_types


async def test_bad_events_are_invalid_argument_with_field_violations(
    stub: pb_grpc.EventServiceStub, key: Forger
) -> None:
    """Wire problems, catalogue problems and reused ids each name their field."""
    md = bearer(key)
    missing = await failure(stub.TrackEvent(pb.TrackEventRequest(), metadata=md))
    assert (missing["code"], missing["violations"]) == (grpc.StatusCode.INVALID_ARGUMENT, {"event": "is required"})

    no_time = listed("e1")
    no_time.ClearField("occurred_at")
    no_time.properties["price"].ClearField("int_value")
    wire = await failure(stub.TrackEvent(pb.TrackEventRequest(event=no_time), metadata=md))
    assert set(wire["violations"]) == {"event.occurred_at", "event.properties[price]"}

    future = timestamp(NOW + timedelta(minutes=10))
    batch = [listed("e1"), listed("e2", type="item_lsted"), listed("e3", occurred_at=future)]
    bad = await failure(stub.TrackEvents(pb.TrackEventsRequest(events=batch), metadata=md))
    assert bad["code"] == grpc.StatusCode.INVALID_ARGUMENT
    assert bad["violations"] == {
        "events[1].type": "unknown event type 'item_lsted'; did you mean 'item_listed'?",
        "events[2].occurred_at": "is more than 5 minutes in the future",
    }

    await stub.TrackEvent(pb.TrackEventRequest(event=listed("e1")), metadata=md)
    reused = await failure(stub.TrackEvent(pb.TrackEventRequest(event=listed("e1", 999)), metadata=md))
    assert (reused["code"], reused["reason"]) == (grpc.StatusCode.INVALID_ARGUMENT, "EVENT_ID_REUSED")
    assert list(reused["violations"]) == ["event.event_id"]

    empty = await failure(stub.TrackEvents(pb.TrackEventsRequest(), metadata=md))
    assert empty["violations"] == {"events": "is required"}


async def test_get_catalogue_describes_types_and_attributes(stub: pb_grpc.EventServiceStub, key: Forger) -> None:
    """Types with source, typed properties (summed, sets), stamps; attributes with signup_age derived."""
    catalogue = await stub.GetCatalogue(pb.GetCatalogueRequest(), metadata=bearer(key, "marketing.read"))
    types = {t.name: t for t in catalogue.event_types}
    assert set(types) == set(DEFAULT_CATALOGUE.event_types)
    price = next(p for p in types["item_listed"].properties if p.name == "price")
    assert (price.type, price.summed, types["item_listed"].source) == (pb.VALUE_TYPE_INT, True, "track")
    assert types["payment_captured"].source == "furima.payments"
    region = next(p for p in types["user_signed_up"].properties if p.name == "region")
    assert (region.sets_attribute, types["user_signed_up"].stamps_attribute) == ("region", "signup_at")
    attributes = {a.name: a for a in catalogue.attributes}
    assert attributes["signup_at"].type == pb.VALUE_TYPE_TIME
    assert attributes["signup_age"].type == pb.VALUE_TYPE_DURATION
    assert attributes["standing"].description == "set by standing_changed.level"
    assert attributes["region"].description == "set by profile_updated.region, user_signed_up.region"
