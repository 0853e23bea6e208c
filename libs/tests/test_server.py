"""The shared server runtime on a real port: auth refusals, rich errors, health, reflection."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from furima.events.v1 import events_pb2
from furima.id.v1 import events_pb2 as id_events
from furima.testing.v1 import echo_service_pb2, echo_service_pb2_grpc
from google.protobuf import any_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from libs.auth import Authorizer, DenyList, Principal, StaticKeys, TokenVerifier, current_principal, optional_principal
from libs.echo import ECHO_SERVICE, EchoServicer, register_echo
from libs.errors import FieldViolation, InvalidArgument, PermissionDenied
from libs.rpc import GrpcServer, ServerConfig, error_details, make_channel
from libs.rpc._deadline import remaining
from libs.rpc._middleware import ServerMiddleware, ServiceHandler
from libs.telemetry import RpcTelemetry, ServerCall
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


ECHO_METHOD = "/furima.testing.v1.EchoService/Echo"


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


async def test_cached_token_is_refused_once_revoked(channel: grpc.aio.Channel, server: GrpcServer, key: Forger) -> None:
    """A token verified (and cached) on an earlier call is refused as soon as its user is suspended."""
    stub = echo_service_pb2_grpc.EchoServiceStub(channel)
    token = key.sign(claims(scope="testing.echo", subject="usr_43"))
    for _ in range(2):  # the second call takes the cached path
        response = await stub.Echo(echo_service_pb2.EchoRequest(message="hi"), metadata=_auth(token))
        assert response.subject == "usr_43"
    denylist = server.middleware.authorizer.verifier.denylist
    assert denylist is not None
    suspended = any_pb2.Any()
    suspended.Pack(id_events.UserSuspended(user_id="usr_43"))
    denylist.apply(events_pb2.Event(id="evt_1", sequence=1, payload=suspended))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Echo(echo_service_pb2.EchoRequest(message="hi"), metadata=_auth(token))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_details(caught.value)["reason"] == "TOKEN_REVOKED"


class _Context:
    """The servicer context a wrapped handler needs, for calling it in-process."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = metadata
        self.code_seen: Any = None

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    def time_remaining(self) -> float:
        return 2.5

    async def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> None:
        self.code_seen = code
        raise _Aborted(details)


class _Aborted(Exception):
    pass


def _wrapped(middleware: ServerMiddleware, behaviour: Any) -> Any:
    return middleware.wrap(ECHO_METHOD, grpc.unary_unary_rpc_method_handler(behaviour)).unary_unary


async def test_principal_and_deadline_are_bound_for_the_handler_only(key: Forger) -> None:
    """The handler sees the caller and the call's deadline; both are unbound afterwards, also after a refusal."""
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}))
    middleware = ServerMiddleware("furima.testing", Authorizer(verifier), RpcTelemetry("furima.testing"))
    seen: list[tuple[str, float | None]] = []

    async def behaviour(request: Any, context: Any) -> str:
        seen.append((current_principal().subject, remaining()))
        return "ran"

    wrapped = _wrapped(middleware, behaviour)
    token = key.sign(claims(scope="testing.echo", subject="usr_44"))
    for _ in range(2):  # verified, then cached
        assert await wrapped(object(), _Context(_auth(token))) == "ran"
        assert optional_principal() is None
        assert remaining() is None
    assert seen == [("usr_44", 2.5), ("usr_44", 2.5)]
    refused = _Context(_auth(key.sign(claims(scope="profile"))))
    with pytest.raises(_Aborted):
        await wrapped(object(), refused)
    assert refused.code_seen is grpc.StatusCode.PERMISSION_DENIED
    assert optional_principal() is None
    assert remaining() is None
    assert middleware.active == set()


async def test_custom_authorizer_and_telemetry_still_decide_every_call(key: Forger) -> None:
    """Subclasses that authorize or start spans their own way are called for every call."""
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}))
    token = key.sign(claims(scope="testing.echo", subject="usr_45"))
    await verifier.verify(token)  # cached
    calls: list[str] = []

    class Everyone(Authorizer):
        async def authorize(self, rule: Any, metadata: Any) -> Principal | None:
            calls.append("authorize")
            return await super().authorize(rule, metadata)

    class Counting(RpcTelemetry):
        def start_server_span(self, method: str, metadata: Any) -> ServerCall:
            calls.append(method)
            return super().start_server_span(method, metadata)

    async def behaviour(request: Any, context: Any) -> str:
        return current_principal().subject

    wrapped = _wrapped(ServerMiddleware("furima.testing", Everyone(verifier), Counting("furima.testing")), behaviour)
    assert await wrapped(object(), _Context(_auth(token))) == "usr_45"
    assert calls == [ECHO_METHOD, "authorize"]


async def test_patched_authorize_still_decides_every_call(key: Forger) -> None:
    """An authorizer whose authorize is replaced on the instance is asked for every call, cached token or not."""
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}))
    token = key.sign(claims(scope="testing.echo", subject="usr_46"))
    await verifier.verify(token)  # cached
    authorizer = Authorizer(verifier)

    async def refuse(rule: Any, metadata: Any) -> Principal | None:
        raise PermissionDenied("closed for maintenance", reason="MAINTENANCE")

    authorizer.authorize = refuse  # type: ignore[method-assign]

    async def behaviour(request: Any, context: Any) -> str:
        return "ran"

    wrapped = _wrapped(ServerMiddleware("furima.testing", authorizer, RpcTelemetry("furima.testing")), behaviour)
    context = _Context(_auth(token))
    with pytest.raises(_Aborted):
        await wrapped(object(), context)
    assert context.code_seen is grpc.StatusCode.PERMISSION_DENIED


async def test_service_handler_binds_each_call_to_the_metadata_grpc_read(key: Forger) -> None:
    """The generic handler answers only its own methods; a call's handler uses the metadata grpc passed it."""
    verifier = TokenVerifier("furima-id", "furima.testing", StaticKeys({"k1": key.key.public_key()}))
    middleware = ServerMiddleware("furima.testing", Authorizer(verifier), RpcTelemetry("furima.testing"))
    seen: list[str] = []

    async def unary(request: Any, context: Any) -> str:
        seen.append(current_principal().subject)
        return "ran"

    async def stream(request: Any, context: Any) -> AsyncIterator[str]:
        yield current_principal().subject

    stream_method = "/furima.events.v1.EventStreamService/StreamEvents"  # a streaming method with a rule
    service = ServiceHandler(
        {
            ECHO_METHOD: middleware.served(ECHO_METHOD, grpc.unary_unary_rpc_method_handler(unary)),
            stream_method: middleware.served(stream_method, grpc.unary_stream_rpc_method_handler(stream)),
        }
    )

    class Details:
        def __init__(self, method: str, metadata: Any) -> None:
            self.method = method
            self.invocation_metadata = metadata

    class NoMetadataContext(_Context):
        def invocation_metadata(self) -> list[tuple[str, str]]:
            raise AssertionError("the metadata grpc read must be used")

    assert service.service(Details("/furima.testing.v1.EchoService/Other", ())) is None
    token = key.sign(claims(scope="testing.echo events.read", subject="usr_47"))
    handler = service.service(Details(ECHO_METHOD, tuple(_auth(token))))
    assert (handler.request_streaming, handler.response_streaming, handler.unary_stream) == (False, False, None)
    assert inspect.iscoroutinefunction(handler.unary_unary)  # how grpc.aio decides to await it
    for _ in range(2):
        assert await handler.unary_unary(object(), NoMetadataContext([])) == "ran"
    assert seen == ["usr_47", "usr_47"]

    streaming = service.service(Details(stream_method, tuple(_auth(token))))
    assert (streaming.request_streaming, streaming.response_streaming, streaming.unary_unary) == (False, True, None)
    assert inspect.isasyncgenfunction(streaming.unary_stream)
    assert [r async for r in streaming.unary_stream(object(), NoMetadataContext([]))] == ["usr_47"]

    refused = NoMetadataContext([])
    with pytest.raises(_Aborted):
        await service.service(Details(ECHO_METHOD, ())).unary_unary(object(), refused)
    assert refused.code_seen is grpc.StatusCode.UNAUTHENTICATED
