"""Client channels: deadline propagation, on-behalf-of tokens, retry policy from the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from furima.id.v1 import user_service_pb2
from furima.testing.v1 import echo_service_pb2, echo_service_pb2_grpc

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.echo import ECHO_SERVICE, EchoServicer, register_echo
from libs.rpc import GrpcServer, ServerConfig, acting_for, make_channel, retry_service_config
from libs.testing import Forger, claims


class RecordingEcho(EchoServicer):
    """Echo that remembers the deadline and the subject it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.time_remaining: float | None = None

    async def Echo(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.time_remaining = context.time_remaining()
        return await super().Echo(request, context)


class StaticTokens:
    """A token source that always gives the same token."""

    def __init__(self, token: str) -> None:
        self.value = token

    async def token(self) -> str:
        return self.value


@pytest.fixture
def key() -> Forger:
    return Forger(kid="k1")


async def _start(key: Forger, servicer: EchoServicer) -> GrpcServer:
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = GrpcServer(service_name="furima.testing", config=ServerConfig(port=0), verifier=verifier)
    server.add(register_echo, servicer, ECHO_SERVICE)
    await server.start()
    return server


@pytest.fixture
async def downstream(key: Forger) -> AsyncIterator[tuple[GrpcServer, RecordingEcho]]:
    servicer = RecordingEcho()
    server = await _start(key, servicer)
    yield server, servicer
    await server.stop(0)


async def test_outgoing_call_inherits_the_remaining_deadline(
    key: Forger, downstream: tuple[GrpcServer, RecordingEcho]
) -> None:
    """A handler's outgoing call gets at most the time its own caller has left, not its own 60 s."""
    target, recorder = downstream
    service_token = key.sign(claims(scope="testing.echo", subject="svc-a"))
    async with make_channel(target.address, tokens=StaticTokens(service_token)) as onward:
        stub = echo_service_pb2_grpc.EchoServiceStub(onward)

        async def forward(message: str) -> str:
            reply = await stub.Echo(echo_service_pb2.EchoRequest(message=message), timeout=60)
            return reply.subject

        front = await _start(key, EchoServicer(downstream=forward))
        try:
            async with make_channel(front.address) as channel:
                user_token = key.sign(claims(scope="testing.echo", subject="usr_front"))
                reply = await echo_service_pb2_grpc.EchoServiceStub(channel).Echo(
                    echo_service_pb2.EchoRequest(message="hi"),
                    metadata=[("authorization", f"Bearer {user_token}")],
                    timeout=2,
                )
        finally:
            await front.stop(0)
    assert reply.message == "svc-a"  # the downstream saw the service's own token
    assert recorder.time_remaining is not None
    # grpc-timeout travels with coarse units, rounded up: allow a little over the 2 s, far from 60 s.
    assert 0 < recorder.time_remaining < 2.5


async def test_acting_for_sends_the_on_behalf_token(key: Forger, downstream: tuple[GrpcServer, RecordingEcho]) -> None:
    """Inside acting_for, outgoing calls carry the exchanged user token instead of the service's."""
    target, _ = downstream
    service_token = key.sign(claims(scope="testing.echo", subject="svc-a"))
    exchanged = key.sign(claims(scope="testing.echo", subject="usr_7", act={"sub": "svc-a"}))
    async with make_channel(target.address, tokens=StaticTokens(service_token)) as channel:
        stub = echo_service_pb2_grpc.EchoServiceStub(channel)
        as_service = await stub.Echo(echo_service_pb2.EchoRequest(message="x"))
        with acting_for(exchanged):
            as_user = await stub.Echo(echo_service_pb2.EchoRequest(message="x"))
    assert (as_service.subject, as_user.subject) == ("svc-a", "usr_7")


def test_retry_policy_covers_only_idempotent_methods() -> None:
    """Methods marked NO_SIDE_EFFECTS/IDEMPOTENT are retried on UNAVAILABLE; SignUp and SignIn are not."""
    config = retry_service_config([ECHO_SERVICE, user_service_pb2.DESCRIPTOR.services_by_name["UserService"]])
    (method_config,) = config["methodConfig"]
    names = {(n["service"], n["method"]) for n in method_config["name"]}
    assert ("furima.testing.v1.EchoService", "Echo") in names
    assert ("furima.id.v1.UserService", "GetUser") in names
    assert ("furima.id.v1.UserService", "SuspendUser") in names
    assert ("furima.id.v1.UserService", "SignUp") not in names
    assert ("furima.id.v1.UserService", "SignIn") not in names
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


async def test_call_without_deadline_has_none_downstream(
    key: Forger, downstream: tuple[GrpcServer, RecordingEcho]
) -> None:
    """A call made outside any served call keeps the timeout it asked for (here: none)."""
    target, recorder = downstream
    async with make_channel(target.address, tokens=StaticTokens(key.sign(claims(scope="testing.echo")))) as channel:
        await echo_service_pb2_grpc.EchoServiceStub(channel).Echo(echo_service_pb2.EchoRequest(message="x"))
    assert recorder.time_remaining is None or recorder.time_remaining > 1000
