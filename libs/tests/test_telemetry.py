"""Tests for libs.telemetry: server spans, access lines, redaction, propagation, metrics."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from libs.telemetry import (
    REDACTED,
    RpcTelemetry,
    Telemetry,
    add_span_exporter,
    configure_logging,
    extract_context,
    flush_logs,
    inject_context,
    redact_secrets,
    setup_telemetry,
    start_client_span,
)
from libs.telemetry import _logging as logging_module
from libs.telemetry import _metrics as metrics_module
from libs.telemetry import _rpc as rpc_module
from libs.telemetry import _tracing as tracing_module
from libs.telemetry._logging import emit_access_line, emit_json_line
from libs.telemetry._tracing import build_tracer_provider, unsampled_span

METHOD = "/furima.id.v1.UserService/GetUser"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl"
ACCESS_KEYS = ("event", "logger", "method", "code", "duration_ms", "principal", "client_id", "trace_id", "span_id")


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """JSON logging into a buffer; the previous structlog and root-logger setup is restored."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging("test-svc", fmt="json", level="INFO", stream=buffer)
    yield buffer
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def installed() -> Iterator[Telemetry]:
    """The process-wide setup (made once), with this test's log lines kept in memory.

    ``setup_telemetry`` configures logging only on its first call; the buffer set up
    after it keeps lines from going to the process's stderr.
    """
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    telemetry = setup_telemetry("test-svc", log_format="json")
    configure_logging("test-svc", fmt="json", level="INFO", stream=io.StringIO())
    yield telemetry
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Collect spans in memory (behind a private SDK provider)."""
    return InMemorySpanExporter()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """Collect metrics in memory."""
    return InMemoryMetricReader()


@pytest.fixture
def rpc(spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader) -> RpcTelemetry:
    """RpcTelemetry on private providers, so tests never touch the process-wide ones."""
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "test-svc"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[metric_reader])
    return RpcTelemetry("test-svc", tracer_provider=tracer_provider, meter_provider=meter_provider)


def access_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Parse the access-log lines written so far."""
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in lines if line.get("logger") == "furima.access"]


def metric_points(reader: InMemoryMetricReader, name: str, method: str = "GetUser") -> list[Any]:
    """Collect one metric's data points for one method (in-flight counts are process-wide)."""
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource_metrics in data.resource_metrics
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if point.attributes.get("rpc.method") == method
    ]


def test_server_span_continues_incoming_trace(rpc: RpcTelemetry, spans: InMemorySpanExporter) -> None:
    """A traceparent in the metadata makes the server span a child in the caller's trace."""
    metadata = [("user-agent", "grpc-python"), ("traceparent", TRACEPARENT), ("x-bin", b"\x00")]
    with rpc.start_server_span(METHOD, metadata) as call:
        assert trace.get_current_span() is call.span
        call.finish(grpc.StatusCode.OK)

    (span,) = spans.get_finished_spans()
    assert span.name == "furima.id.v1.UserService/GetUser"
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "furima.id.v1.UserService",
        "rpc.method": "GetUser",
        "rpc.grpc.status_code": 0,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_access_line_has_call_fields(rpc: RpcTelemetry, log_output: io.StringIO) -> None:
    """One access line per call names method, code, duration, principal and the span's ids."""
    with rpc.start_server_span(METHOD, [("traceparent", TRACEPARENT)]) as call:
        call.set_principal("usr_1", "web")
        call.finish(grpc.StatusCode.NOT_FOUND)
        call.finish(grpc.StatusCode.INTERNAL)  # ignored: one line per call

    (line,) = access_lines(log_output)
    ctx = call.span.get_span_context()
    assert line["event"] == "rpc"
    assert line["method"] == METHOD
    assert line["code"] == "NOT_FOUND"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["principal"] == "usr_1"
    assert line["client_id"] == "web"
    assert line["trace_id"] == TRACE_ID == format(ctx.trace_id, "032x")
    assert line["span_id"] == format(ctx.span_id, "016x")
    assert line["level"] == "info"
    assert line["service"] == "test-svc"
    assert "timestamp" in line


def test_access_line_redacts_secrets(rpc: RpcTelemetry, log_output: io.StringIO) -> None:
    """A JWT-looking principal, a bearer error and a bound password never reach the output."""
    structlog.contextvars.bind_contextvars(password="hunter2")
    with rpc.start_server_span(METHOD, None) as call:
        call.set_principal(JWT, "web")
        call.finish(grpc.StatusCode.UNAUTHENTICATED, error="bad header: Bearer abc.def")

    (line,) = access_lines(log_output)
    assert line["principal"] == REDACTED
    assert line["password"] == REDACTED
    assert line["error"] == REDACTED
    assert line["code"] == "UNAUTHENTICATED"
    output = log_output.getvalue()
    assert JWT not in output
    assert "hunter2" not in output
    assert "abc.def" not in output


def test_internal_marks_span_error_and_logs_warning(
    rpc: RpcTelemetry, spans: InMemorySpanExporter, log_output: io.StringIO
) -> None:
    """INTERNAL sets span status ERROR with the message and logs at WARNING."""
    with rpc.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.INTERNAL, error="database is down")

    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "database is down"
    assert (span.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    (line,) = access_lines(log_output)
    assert line["level"] == "warning"
    assert line["error"] == "database is down"


def test_principal_lands_on_span(rpc: RpcTelemetry, spans: InMemorySpanExporter) -> None:
    """set_principal records enduser.id and furima.client_id."""
    with rpc.start_server_span(METHOD, None) as call:
        call.set_principal("usr_1", "web")
        call.finish(grpc.StatusCode.OK)

    attributes = spans.get_finished_spans()[0].attributes or {}
    assert attributes["enduser.id"] == "usr_1"
    assert attributes["furima.client_id"] == "web"


def test_metrics_record_duration_and_in_flight(rpc: RpcTelemetry, metric_reader: InMemoryMetricReader) -> None:
    """The duration histogram is keyed by method, service and code; in-flight returns to zero."""
    with rpc.start_server_span(METHOD, None) as call:
        (in_flight,) = metric_points(metric_reader, "rpc.server.active_requests")
        assert in_flight.value == 1
        call.finish(grpc.StatusCode.OK)

    (duration,) = metric_points(metric_reader, "rpc.server.duration")
    assert dict(duration.attributes) == {
        "rpc.method": "GetUser",
        "rpc.service": "furima.id.v1.UserService",
        "rpc.grpc.status_code": 0,
    }
    assert duration.count == 1
    (in_flight,) = metric_points(metric_reader, "rpc.server.active_requests")
    assert in_flight.value == 0


async def test_exit_without_finish_records_cancelled(rpc: RpcTelemetry, spans: InMemorySpanExporter) -> None:
    """A call cancelled before finish still ends its span, as CANCELLED."""

    async def handler() -> None:
        with rpc.start_server_span(METHOD, None):
            await asyncio.Event().wait()

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (span,) = spans.get_finished_spans()
    assert (span.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert span.status.status_code is StatusCode.ERROR


def test_inject_context_round_trips(rpc: RpcTelemetry) -> None:
    """inject_context writes a traceparent that extract reads back, replacing a stale one."""
    with rpc.start_server_span(METHOD, [("traceparent", TRACEPARENT)]) as call:
        metadata = [("traceparent", "00-stale-stale-00"), ("x-request-id", "r1")]
        inject_context(metadata)
        call.finish(grpc.StatusCode.OK)

    assert [k for k, _ in metadata].count("traceparent") == 1
    assert ("x-request-id", "r1") in metadata
    extracted = trace.get_current_span(extract_context(metadata)).get_span_context()
    ctx = call.span.get_span_context()
    assert extracted.trace_id == ctx.trace_id
    assert extracted.span_id == ctx.span_id
    assert extracted.is_remote


def test_metadata_without_trace_headers_starts_a_new_trace(rpc: RpcTelemetry, spans: InMemorySpanExporter) -> None:
    """Calls without propagation headers get a root span with a fresh trace id."""
    with rpc.start_server_span(METHOD, [("user-agent", "x")]) as call:
        call.finish(grpc.StatusCode.OK)

    (span,) = spans.get_finished_spans()
    assert span.parent is None
    assert span.context.trace_id != int(TRACE_ID, 16)


def test_redaction_rules() -> None:
    """Secret keys (any case, nested, metadata pairs) and token values are redacted; status codes are not."""
    event = redact_secrets(
        None,
        "info",
        {
            "event": "login",
            "Client-Secret": "s3",
            "code": "auth-code-123",
            "db_password": "pw",
            "headers": {"authorization": "Basic xyz", "accept": "json"},
            "metadata": [("authorization", "opaque"), ("x-id", "1")],
            "note": f"got {JWT}",
            "hint": "BEARER abc",
            "count": 3,
        },
    )
    assert event == {
        "event": "login",
        "Client-Secret": REDACTED,
        "code": REDACTED,
        "db_password": REDACTED,
        "headers": {"authorization": REDACTED, "accept": "json"},
        "metadata": [("authorization", REDACTED), ("x-id", "1")],
        "note": REDACTED,
        "hint": REDACTED,
        "count": 3,
    }
    assert redact_secrets(None, "info", {"code": "PERMISSION_DENIED"}) == {"code": "PERMISSION_DENIED"}


def test_traceback_keeps_text_but_loses_tokens(log_output: io.StringIO) -> None:
    """An exception's traceback is logged with only the tokens in it replaced."""
    try:
        raise ValueError(f"rejected Bearer {JWT}")
    except ValueError:
        structlog.get_logger("test").exception("failed")

    (line,) = [json.loads(raw) for raw in log_output.getvalue().splitlines()]
    assert "ValueError: rejected [redacted]" in line["exception"]
    assert JWT not in line["exception"]


def test_global_durations_wait_for_a_reader(installed: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the global provider, durations are recorded only once a reader is attached."""
    monkeypatch.setattr(metrics_module.LIVENESS, "live", False)
    telemetry = RpcTelemetry("test-svc")
    with telemetry.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.OK)  # not recorded: nothing would read it

    reader = InMemoryMetricReader()
    installed.add_metric_reader(reader)
    try:
        with telemetry.start_server_span(METHOD, None) as call:
            call.finish(grpc.StatusCode.OK)
        (point,) = metric_points(reader, "rpc.server.duration")
        assert point.count == 1
    finally:
        installed.meter_provider.remove_metric_reader(reader)


def test_idle_provider_mints_ids_without_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no exporter, spans never record but carry (continued) trace ids; attaching one starts recording."""
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    provider = build_tracer_provider(Resource.create({"service.name": "test-svc"}))
    tracer = provider.get_tracer("test")

    idle = tracer.start_span("idle")
    assert not idle.is_recording()
    assert idle.get_span_context().is_valid
    sampled_parent = extract_context([("traceparent", TRACEPARENT)])
    child = tracer.start_span("child", context=sampled_parent)
    assert not child.is_recording()
    assert format(child.get_span_context().trace_id, "032x") == TRACE_ID

    exporter = InMemorySpanExporter()
    add_span_exporter(exporter, provider)
    tracer.start_span("busy").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["busy"]
    provider.shutdown()


async def test_client_span_records_grpc_error(installed: Telemetry) -> None:
    """A gRPC error leaving start_client_span marks the CLIENT span ERROR with its code."""
    exporter = InMemorySpanExporter()
    installed.add_span_exporter(exporter)
    error = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())

    with pytest.raises(grpc.aio.AioRpcError), start_client_span(METHOD):
        raise error

    (client,) = exporter.get_finished_spans()
    assert client.status.status_code is StatusCode.ERROR
    assert (client.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]


def test_setup_is_idempotent_and_client_spans_export(installed: Telemetry) -> None:
    """A second setup returns the first; a late exporter sees CLIENT spans from start_client_span."""
    exporter = InMemorySpanExporter()
    again = setup_telemetry("other-svc", span_exporter=exporter)
    assert again is installed

    with start_client_span(METHOD) as span:
        metadata: list[tuple[str, str]] = []
        inject_context(metadata)

    (client,) = [s for s in exporter.get_finished_spans() if s.context.span_id == span.get_span_context().span_id]
    assert client.kind is SpanKind.CLIENT
    assert client.name == "furima.id.v1.UserService/GetUser"
    sent = trace.get_current_span(extract_context(metadata)).get_span_context()
    assert sent.span_id == client.context.span_id


async def test_access_lines_are_batched_inside_an_event_loop(rpc: RpcTelemetry, log_output: io.StringIO) -> None:
    """In a server, OK lines wait (at most 0.1 s) to be written together; a warning goes out at once with them."""
    with rpc.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.OK)
    assert access_lines(log_output) == []
    with rpc.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.INTERNAL, "boom")
    assert [line["code"] for line in access_lines(log_output)] == ["OK", "INTERNAL"]


async def test_flush_logs_writes_what_waits(rpc: RpcTelemetry, log_output: io.StringIO) -> None:
    """flush_logs (called on shutdown and at exit) writes queued access lines."""
    with rpc.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.OK)
    flush_logs()
    assert [line["code"] for line in access_lines(log_output)] == ["OK"]


ACCESS_VALUES: list[tuple[object, object, float]] = [
    ("usr_1", "web", 0.123),
    ('quo"te\\back', "tab\there\nnewline", 0.0),
    ("ünïcødé ☃ \u2028", "\x00\x1f\x7f", 1234.567),
    (123, None, 1e16),
    (["not", "a", "str"], {"k": "v"}, 0.001),
]


@pytest.mark.parametrize(("principal", "client_id", "duration"), ACCESS_VALUES)
@pytest.mark.parametrize("code", ["OK", "NOT_FOUND", "INTERNAL"])
def test_access_line_fast_path_writes_what_the_general_path_writes(
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
    principal: object,
    client_id: object,
    duration: float,
    code: str,
) -> None:
    """emit_access_line renders the access line without a dict: byte for byte the line emit_json_line writes."""
    monkeypatch.setattr(logging_module, "time_ns", lambda: 1_764_491_123_456_789_000)
    level = "warning" if code == "INTERNAL" else "info"
    args = (METHOD + "/ü", code, duration, principal, client_id, TRACE_ID, PARENT_SPAN_ID)
    assert emit_access_line(level, *args)
    fields: dict[str, object] = dict(zip(ACCESS_KEYS, ("rpc", "furima.access", *args), strict=True))
    assert emit_json_line(level, fields)
    fast, general, end = log_output.getvalue().split("\n")  # not splitlines(): U+2028 is inside a line
    assert fast == general
    assert end == ""
    assert json.loads(fast)["timestamp"] == "2025-11-30T08:25:23.456789Z"


def test_access_line_fast_path_defers_to_bound_context_and_level(
    log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With context vars bound (redacted) or the level filtered, the fast path behaves as emit_json_line."""
    monkeypatch.setattr(logging_module, "time_ns", lambda: 1_764_491_123_000_000_000)
    args = (METHOD, "OK", 0.5, "usr_1", "web", TRACE_ID, PARENT_SPAN_ID)
    structlog.contextvars.bind_contextvars(request_id="r1", password="hunter2")
    assert emit_access_line("info", *args)
    assert emit_json_line("info", dict(zip(ACCESS_KEYS, ("rpc", "furima.access", *args), strict=True)))
    fast, general = log_output.getvalue().splitlines()
    assert fast == general
    assert json.loads(fast)["password"] == REDACTED
    assert json.loads(fast)["timestamp"] == "2025-11-30T08:25:23Z"
    configure_logging("test-svc", fmt="json", level="WARNING", stream=log_output)
    assert emit_access_line("info", *args)  # filtered out, as emit_json_line does
    assert len(log_output.getvalue().splitlines()) == 2


def test_access_line_fast_path_needs_json_logging() -> None:
    """Without the JSON sink the fast path writes nothing and says so (the caller then logs via structlog)."""
    saved = logging_module._json_sink
    logging_module._json_sink = None
    try:
        assert not emit_access_line("info", METHOD, "OK", 0.1, "-", "-", "-", "-")
    finally:
        logging_module._json_sink = saved


@pytest.mark.parametrize(
    "ns",
    [
        0,
        10**9,
        1_764_491_123_000_000_000,
        1_764_491_123_000_001_000,
        1_764_491_123_999_999_999,
        4_102_444_799_999_999_000,
    ],
)
def test_timestamps_are_datetime_isoformat(monkeypatch: pytest.MonkeyPatch, ns: int) -> None:
    """The cached-second timestamp is datetime.now(UTC).isoformat() with Z, microseconds truncated, none when zero."""
    second, micros = divmod(ns // 1000, 1_000_000)
    expected = datetime.fromtimestamp(second, UTC).replace(microsecond=micros).isoformat().replace("+00:00", "Z")
    monkeypatch.setattr(logging_module, "time_ns", lambda: ns)
    assert logging_module.utc_timestamp() == expected
    assert logging_module.utc_timestamp() == expected  # from the cached second
    monkeypatch.setattr(logging_module, "time_ns", lambda: ns + 1_000)
    later = datetime.fromtimestamp(second, UTC).replace(microsecond=micros) + timedelta(microseconds=1)
    assert logging_module.utc_timestamp() == later.isoformat().replace("+00:00", "Z")


def test_duration_rounding_is_round_to_microseconds() -> None:
    """The access line's duration_ms is round(ns / 1e6, 3), ties and huge values included."""
    samples = [*range(0, 3_000_000, 7), *range(499, 10**9, 1_000_003), 500, 1_500, 2_500, 10**15 - 500, 10**15, 2**63]
    for ns in samples:
        assert rpc_module._duration_ms(ns) == round(ns / 1e6, 3), ns


def test_unsampled_span_is_what_the_constructor_builds() -> None:
    """The non-recording span carries a SpanContext equal to SpanContext(...) of its ids, in the caller's trace."""
    assert tracing_module.SPAN_CONTEXT_LAYOUT
    fresh = unsampled_span(None).get_span_context()
    assert fresh == trace.SpanContext(fresh.trace_id, fresh.span_id, False, trace.TraceFlags(0), None)
    assert fresh.is_valid
    assert not fresh.trace_flags.sampled
    continued = unsampled_span(extract_context([("traceparent", TRACEPARENT), ("tracestate", "k=v")]))
    ctx = continued.get_span_context()
    assert format(ctx.trace_id, "032x") == TRACE_ID
    assert format(ctx.span_id, "016x") != PARENT_SPAN_ID
    assert ctx.trace_state.get("k") == "v"
    assert ctx == trace.SpanContext(ctx.trace_id, ctx.span_id, False, trace.TraceFlags(0), ctx.trace_state)


def test_server_calls_start_the_methods_spans(
    rpc: RpcTelemetry, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    """server_calls(method) is start_server_span bound to the method: same span, same counting."""
    start = rpc.server_calls(METHOD)
    with start([("traceparent", TRACEPARENT)]) as first, start(None) as second:
        assert trace.get_current_span() is second.span
        (in_flight,) = metric_points(metric_reader, "rpc.server.active_requests")
        assert in_flight.value == 2
        first.finish(grpc.StatusCode.OK)
        second.finish(grpc.StatusCode.INTERNAL, "boom")
    (in_flight,) = metric_points(metric_reader, "rpc.server.active_requests")
    assert in_flight.value == 0
    by_id = {span.context.span_id: span for span in spans.get_finished_spans()}
    one, two = by_id[first.span.get_span_context().span_id], by_id[second.span.get_span_context().span_id]
    assert one.name == two.name == "furima.id.v1.UserService/GetUser"
    assert one.parent is not None
    assert format(one.context.trace_id, "032x") == TRACE_ID
    assert one.status.status_code is StatusCode.UNSET
    assert two.status.status_code is StatusCode.ERROR


def test_idle_global_provider_is_looked_up_until_one_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The global tracer provider is remembered only once it is a real one (the API's proxy forwards later)."""
    proxy = trace.ProxyTracerProvider()
    provider = build_tracer_provider(Resource.create({"service.name": "test-svc"}))
    current: list[object] = [proxy]
    monkeypatch.setattr(rpc_module, "_global_provider", lambda: current[0])
    telemetry = RpcTelemetry("test-svc")
    with telemetry.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.OK)
    assert telemetry._global is None  # the proxy (its tracer forwards once a provider is set)
    current[0] = provider
    with telemetry.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.OK)
    assert telemetry._global is provider
    current[0] = proxy
    with telemetry.start_server_span(METHOD, None) as call:
        call.finish(grpc.StatusCode.OK)
    assert telemetry._global is provider  # an installed provider is never replaced
    assert not call.span.is_recording()  # the idle provider's unsampled span, with ids
    assert call.span.get_span_context().is_valid
    provider.shutdown()
