"""The shared server runtime on a real port: auth refusals, rich errors, health, reflection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from furima.testing.v1 import echo_service_pb2, echo_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from libs.auth import Authorizer, DenyList, StaticKeys, TokenVerifier
from libs.echo import ECHO_SERVICE, EchoServicer, register_echo
from libs.errors import FieldViolation, InvalidArgument
from libs.rpc import GrpcServer, ServerConfig, error_details, make_channel
from libs.rpc._middleware import ServerMiddleware
from libs.telemetry import RpcTelemetry
from libs.testing import Forger, claims


class FailingEcho(EchoServicer):
    """Echo that fails on demand, to see how errors reach the client."""

    async def Echo(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.message == "invalid":
            raise InvalidArgument("bad", [FieldViolation("message", "must not be 'invalid'")])
        if request.message == "crash":
            raise RuntimeError("secret internals")
        return await super().Echo(request, context)


@pytest.fixture
def key() -> Forger:
    return Forger(kid="k1")


@pytest.fixture
async def server(key: Forger) -> AsyncIterator[GrpcServer]:
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}), DenyList())
    srv = GrpcServer(service_name="furima.testing", config=ServerConfig(port=0), verifier=verifier)
    srv.add(register_echo, FailingEcho(), ECHO_SERVICE)
    await srv.start()
    yield srv
    await srv.stop(0)


@pytest.fixture
async def channel(server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    async with make_channel(server.address, services=[ECHO_SERVICE]) as ch:
        yield ch


def _auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def test_valid_token_with_scope_reaches_handler(channel: grpc.aio.Channel, key: Forger) -> None:
    """A valid token carrying the method's scope gets through, and the handler sees its subject."""
    stub = echo_service_pb2_grpc.EchoServiceStub(channel)
    token = key.sign(claims(scope="testing.echo", subject="usr_42"))
    response = await stub.Echo(echo_service_pb2.EchoRequest(message="hi"), metadata=_auth(token))
    assert (response.message, response.subject) == ("hi", "usr_42")


@pytest.mark.parametrize("metadata", [[], [("authorization", "Basic abc")], _auth("garbage")])
async def test_missing_or_malformed_token_is_unauthenticated(
    channel: grpc.aio.Channel, metadata: list[tuple[str, str]]
) -> None:
    """No token, a non-bearer header, or garbage → UNAUTHENTICATED with a reason."""
    stub = echo_service_pb2_grpc.EchoServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Echo(echo_service_pb2.EchoRequest(message="hi"), metadata=metadata)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert str(error_details(caught.value)["reason"]).startswith("TOKEN_")


async def test_missing_scope_is_permission_denied(channel: grpc.aio.Channel, key: Forger) -> None:
    """A valid token without the method's scope → PERMISSION_DENIED, reason SCOPE_MISSING."""
    stub = echo_service_pb2_grpc.EchoServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Echo(echo_service_pb2.EchoRequest(message="hi"), metadata=_auth(key.sign(claims(scope="profile"))))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_details(caught.value)["reason"] == "SCOPE_MISSING"


async def test_domain_error_becomes_invalid_argument_with_field_violations(
    channel: grpc.aio.Channel, key: Forger
) -> None:
    """An InvalidArgument raised by a handler reaches the client with BadRequest details."""
    stub = echo_service_pb2_grpc.EchoServiceStub(channel)
    token = key.sign(claims(scope="testing.echo"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Echo(echo_service_pb2.EchoRequest(message="invalid"), metadata=_auth(token))
    details = error_details(caught.value)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert details["violations"] == {"message": "must not be 'invalid'"}
    assert details["domain"] == "furima.testing"


async def test_unexpected_exception_is_internal_without_leaking(channel: grpc.aio.Channel, key: Forger) -> None:
    """A bug in a handler is INTERNAL with a generic message, never the exception text."""
    stub = echo_service_pb2_grpc.EchoServiceStub(channel)
    token = key.sign(claims(scope="testing.echo"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Echo(echo_service_pb2.EchoRequest(message="crash"), metadata=_auth(token))
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert "secret" not in (caught.value.details() or "")


async def test_health_and_reflection_are_open(channel: grpc.aio.Channel, server: GrpcServer) -> None:
    """Health reports SERVING and reflection lists the services, both without a token."""
    health = health_pb2_grpc.HealthStub(channel)
    overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
    echo = await health.Check(health_pb2.HealthCheckRequest(service=ECHO_SERVICE.full_name))
    assert overall.status == echo.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name async for r in responses for s in r.list_services_response.service}
    assert ECHO_SERVICE.full_name in names
    assert "grpc.health.v1.Health" in names


async def test_graceful_stop_reports_not_serving(key: Forger) -> None:
    """During shutdown health turns NOT_SERVING for every service."""
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}))
    srv = GrpcServer(service_name="furima.testing", config=ServerConfig(port=0), verifier=verifier)
    srv.add(register_echo, EchoServicer(), ECHO_SERVICE)
    await srv.start()
    await srv.health.enter_graceful_shutdown()
    async with make_channel(srv.address) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=ECHO_SERVICE.full_name)
        )
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await srv.stop(0)


async def test_method_without_a_rule_fails_closed(key: Forger) -> None:
    """A handler for a method the contracts give no rule is never run: PERMISSION_DENIED, reason NO_ACCESS_RULE."""
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}))
    middleware = ServerMiddleware("furima.testing", Authorizer(verifier), RpcTelemetry("furima.testing"))
    ran: list[bool] = []

    async def behaviour(request: Any, context: Any) -> str:
        ran.append(True)
        return "ran"

    wrapped = middleware.wrap("/furima.testing.v1.Unknown/Method", grpc.unary_unary_rpc_method_handler(behaviour))

    class Aborted(Exception):
        pass

    class Context:
        code_seen: Any = None

        def invocation_metadata(self) -> tuple[()]:
            return ()

        async def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> None:
            self.code_seen = code
            raise Aborted(details)

    context = Context()
    with pytest.raises(Aborted):
        await wrapped.unary_unary(object(), context)
    assert context.code_seen is grpc.StatusCode.PERMISSION_DENIED
    assert ran == []
