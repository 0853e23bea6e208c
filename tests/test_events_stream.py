"""The ID service's event stream over gRPC, and a durable consumer applying it exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import grpc
from furima.events.v1 import events_pb2, events_pb2_grpc
from furima.id.v1 import events_pb2 as id_events
from furima.id.v1 import oauth_service_pb2, user_service_pb2
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from libs.events import DurableConsumer, GrpcEventSource, consumer_tables
from libs.identity import client_credentials
from libs.rpc import make_channel
from libs.storage import Database, Transaction
from tests.helpers import ALICE, BOB, bearer, rpc_error, user_id, users
from tests.stack import Stack

SIGNED_UP = id_events.UserSignedUp.DESCRIPTOR.full_name
SUSPENDED = id_events.UserSuspended.DESCRIPTOR.full_name


def _stream(stack: Stack, token: str, request: events_pb2.StreamEventsRequest) -> AsyncIterator[events_pb2.Event]:
    call = events_pb2_grpc.EventStreamServiceStub(stack.channel).StreamEvents(request, metadata=bearer(token))

    async def events() -> AsyncIterator[events_pb2.Event]:
        async for response in call:
            yield response.event

    return events()


async def _read_all(stack: Stack, token: str, after: int = 0, types: tuple[str, ...] = ()) -> list[events_pb2.Event]:
    request = events_pb2.StreamEventsRequest(after_sequence=after, types=list(types), follow=False)
    return [event async for event in _stream(stack, token, request)]


async def _suspend(stack: Stack, target: str) -> None:
    token = await stack.client_token("svc-tns", scope="id.users.admin")
    await users(stack).SuspendUser(
        user_service_pb2.SuspendUserRequest(user_id=target, reason="test"), metadata=bearer(token)
    )


async def test_events_arrive_in_order_and_resume_after_cursor(stack: Stack) -> None:
    """Events come in strictly increasing sequence; after_sequence returns exactly the later ones."""
    token = await stack.client_token(scope="events.read")
    events = await _read_all(stack, token)

    sequences = [e.sequence for e in events]
    assert len(events) >= 2  # the demo users' sign-ups
    assert sequences == sorted(set(sequences))
    assert all(e.source == "furima.id" and e.id for e in events)

    rest = await _read_all(stack, token, after=events[0].sequence)
    assert [e.id for e in rest] == [e.id for e in events[1:]]


async def test_types_filter_returns_only_those_types(stack: Stack) -> None:
    """A types filter returns only events of those types, still in order."""
    alice = await user_id(stack, ALICE)
    await _suspend(stack, alice)
    token = await stack.client_token(scope="events.read")

    everything = await _read_all(stack, token)
    suspended = await _read_all(stack, token, types=(SUSPENDED,))

    assert {e.type for e in everything} >= {SIGNED_UP, SUSPENDED}
    assert [e.id for e in suspended] == [e.id for e in everything if e.type == SUSPENDED]
    assert len(suspended) == 1
    payload = id_events.UserSuspended()
    assert suspended[0].payload.Unpack(payload)
    assert payload.user_id == alice


async def test_follow_pushes_new_events(stack: Stack) -> None:
    """With follow=True an open stream delivers an event committed after it started within seconds."""
    token = await stack.client_token(scope="events.read")
    last = (await _read_all(stack, token))[-1].sequence
    stream = _stream(stack, token, events_pb2.StreamEventsRequest(after_sequence=last, follow=True))
    pending = asyncio.ensure_future(anext(stream))
    try:
        signed_up = await users(stack).SignUp(
            user_service_pb2.SignUpRequest(email="dave@example.com", password="a-long-enough-password")
        )
        event = await asyncio.wait_for(pending, timeout=5)
    finally:
        pending.cancel()
        await stream.aclose()  # type: ignore[attr-defined]

    assert event.sequence > last
    assert (event.type, event.aggregate_id) == (SIGNED_UP, signed_up.user.id)


async def test_negative_cursor_is_invalid_argument(stack: Stack) -> None:
    """after_sequence < 0 is INVALID_ARGUMENT with an after_sequence violation."""
    token = await stack.client_token(scope="events.read")
    error = await rpc_error(_read_all(stack, token, after=-1))
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT
    assert "after_sequence" in error["violations"]  # type: ignore[operator]


async def test_stream_needs_events_read(stack: Stack) -> None:
    """A valid token without events.read is PERMISSION_DENIED."""
    token = await stack.client_token(scope="id.users.read")
    error = await rpc_error(_read_all(stack, token))
    assert error["code"] == grpc.StatusCode.PERMISSION_DENIED


async def test_durable_consumer_applies_each_event_once(stack: Stack, tmp_path: Path) -> None:
    """A DurableConsumer applies the ID stream once: a second drain and a replay apply nothing, no duplicates."""
    metadata = MetaData()
    tables = consumer_tables(metadata)
    seen = Table(
        "signed_up_users",
        metadata,
        Column("row", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(40), nullable=False),  # deliberately not unique: duplicates must show
        Column("user_id", String(40), nullable=False),
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/consumer.db")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)

    async def handler(tx: Transaction, event: events_pb2.Event) -> None:
        await tx.conn.execute(insert(seen).values(event_id=event.id, user_id=event.aggregate_id))

    tokens = client_credentials(stack.channel, "furima-dev", stack.secrets["furima-dev"], scope="events.read")
    try:
        async with make_channel(stack.id.address, tokens=tokens) as channel:
            source = GrpcEventSource(channel)
            consumer = DurableConsumer("test-consumer", source, db, tables, handler, types=[SIGNED_UP])

            first = await consumer.drain()
            second = await consumer.drain()
            async with aclosing(source.stream(0, [SIGNED_UP], follow=False)) as stream:  # type: ignore[type-var]
                replayed = await anext(stream)
            again = await consumer.apply(replayed)
            position = await consumer.position()

        async with db.read() as conn:
            rows = (await conn.execute(select(seen.c.event_id, seen.c.user_id))).all()
            distinct = await conn.scalar(select(func.count(func.distinct(seen.c.event_id))))
    finally:
        await db.dispose()

    assert first == 2  # alice and bob
    assert second == 0
    assert again is False
    assert len(rows) == distinct == 2
    assert {user for _, user in rows} == {await user_id(stack, ALICE), await user_id(stack, BOB)}
    assert position > 0


async def test_a_stream_ends_when_its_token_is_revoked(stack: Stack) -> None:
    """A following stream stops with UNAUTHENTICATED once its token is revoked (it outlives no token)."""
    token = await stack.client_token(scope="events.read")
    last = (await _read_all(stack, token))[-1].sequence
    call = events_pb2_grpc.EventStreamServiceStub(stack.channel).StreamEvents(
        events_pb2.StreamEventsRequest(after_sequence=last, follow=True), metadata=bearer(token)
    )
    await stack.oauth.Revoke(
        oauth_service_pb2.RevokeRequest(token=token, client_id="furima-dev", client_secret=stack.secrets["furima-dev"])
    )
    await users(stack).SignUp(user_service_pb2.SignUpRequest(email="erin@example.com", password="a-long-enough-pw"))

    async def drain() -> grpc.StatusCode:
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    assert await asyncio.wait_for(drain(), 10) == grpc.StatusCode.UNAUTHENTICATED
