"""One trace follows a request across two hops: test → echo → ID."""

from __future__ import annotations

from furima.id.v1 import user_service_pb2, user_service_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs.identity import client_credentials
from libs.rpc import make_channel
from libs.telemetry import add_span_exporter, setup_telemetry
from tests.helpers import ALICE, echo_caller, user_id
from tests.stack import Stack, running_echo

GET_USER = "furima.id.v1.UserService/GetUser"
ECHO = "furima.testing.v1.EchoService/Echo"


def _one(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, f"expected one {kind.name} span {name!r}, got {[(s.name, s.kind) for s in spans]}"
    return found[0]


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_two_hop_call_is_one_trace(stack: Stack) -> None:
    """Echo server, its client call to ID and ID's server span share the test's trace and chain as parent → child."""
    setup_telemetry("furima-tests")
    exporter = InMemorySpanExporter()
    add_span_exporter(exporter)

    alice = await user_id(stack, ALICE)
    tokens = client_credentials(stack.channel, "furima-dev", stack.secrets["furima-dev"], scope="id.users.read")
    await tokens.token()  # fetched up front so the token request is not part of the traced call
    async with make_channel(stack.id.address, tokens=tokens) as to_id:
        users = user_service_pb2_grpc.UserServiceStub(to_id)

        async def downstream(message: str) -> str:
            reply = await users.GetUser(user_service_pb2.GetUserRequest(user_id=alice), timeout=5)
            return f"{message} {reply.user.email}"

        async with running_echo(stack, downstream=downstream) as echo, echo_caller(echo) as caller:
            token = await stack.client_token()
            exporter.clear()
            tracer = trace.get_tracer("furima.tests")
            with tracer.start_as_current_span("test-request", kind=SpanKind.CLIENT) as root:
                reply = await caller.echo(token, "hello")
            trace_id = root.get_span_context().trace_id

    assert reply.message == f"hello {ALICE}"
    spans = [s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]
    test_span = _one(spans, "test-request", SpanKind.CLIENT)
    echo_client = _one(spans, ECHO, SpanKind.CLIENT)
    echo_server = _one(spans, ECHO, SpanKind.SERVER)
    id_client = _one(spans, GET_USER, SpanKind.CLIENT)
    id_server = _one(spans, GET_USER, SpanKind.SERVER)

    assert test_span.context is not None
    assert echo_client.context is not None
    assert echo_server.context is not None
    assert id_client.context is not None
    assert _parent_of(echo_client) == test_span.context.span_id
    assert _parent_of(echo_server) == echo_client.context.span_id
    assert _parent_of(id_client) == echo_server.context.span_id
    assert _parent_of(id_server) == id_client.context.span_id
    assert id_server.attributes is not None
    assert id_server.attributes.get("furima.client_id") == "furima-dev"
