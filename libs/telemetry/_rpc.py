"""Per-RPC telemetry for the server middleware: a span, two metrics and one access line.

This runs on every call, so the hot path avoids per-call dicts: method names are split
once (at registration through `RpcTelemetry.server_calls`, else a bounded cache),
instruments are created up front, attribute mappings are shared, calls that carry no
trace headers skip propagation entirely, and the access line of a call without an error
is rendered straight to text (`emit_access_line`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextvars import Token
from time import perf_counter_ns
from types import TracebackType

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import (
    NonRecordingSpan,
    ProxyTracerProvider,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)

from libs.telemetry._logging import ACCESS_LOGGER, emit_access_line, emit_json_line, get_logger
from libs.telemetry._methods import RpcMethod, rpc_method, status_number
from libs.telemetry._metrics import IN_FLIGHT, LIVENESS
from libs.telemetry._tracing import (
    SPAN_CONTEXT_LAYOUT,
    TRACER_NAME,
    ExportGatedSampler,
    extract_context,
    unsampled_span,
)

_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.DATA_LOSS,
    }
)
"""Logged at WARNING; everything else (OK and the caller's mistakes) at INFO."""

_OK = grpc.StatusCode.OK
_ACCESS_FIELDS = {code: (code.name, "warning" if code in _SERVER_FAULTS else "info") for code in grpc.StatusCode}
"""Per status: its name in the access line and the line's level."""

_EXACT_ROUNDING_NS = 10**15
"""Below this (11 days) integer rounding of a duration to microseconds gives the float
``round(ns / 1e6, 3)`` gives, except on an exact half microsecond (see `_duration_ms`)."""

Metadata = Sequence[tuple[str, str | bytes]]


def _global_provider() -> object:
    return trace.get_tracer_provider()


def _duration_ms(duration_ns: int) -> float:
    """``round(duration_ns / 1e6, 3)``, without the decimal conversion ``round`` does.

    Rounding the exact integer to whole microseconds picks the same multiple of 0.001 ms
    as rounding the float unless the remainder is exactly 500 ns (a tie, which the
    float's representation error may break either way: ``round`` decides those).
    """
    micros, rest = divmod(duration_ns, 1000)
    if rest == 500 or not 0 <= duration_ns < _EXACT_ROUNDING_NS:
        return round(duration_ns / 1e6, 3)
    return (micros + 1 if rest > 500 else micros) / 1000


class RpcTelemetry:
    """Creates a `ServerCall` per inbound RPC; one instance per server, built at startup.

    The providers default to the global ones (which may be installed later: the API
    proxies forward once ``setup_telemetry`` runs); tests pass their own.
    """

    __slots__ = ("_always_record", "_duration", "_global", "_log", "_provider", "_tracer", "service_name")

    def __init__(
        self,
        service_name: str,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.service_name = service_name
        self._provider = tracer_provider
        self._global: object = None
        """The global tracer provider once one is installed (OpenTelemetry sets it only once)."""
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(TRACER_NAME, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Duration of inbound RPCs."
        )
        meter.create_observable_up_down_counter(
            "rpc.server.active_requests",
            callbacks=[IN_FLIGHT.observe],
            unit="{request}",
            description="Inbound RPCs in flight.",
        )
        # A provider handed in (tests) is assumed to have readers; the global one says so.
        self._always_record = meter_provider is not None
        self._log = get_logger(ACCESS_LOGGER)

    def start_server_span(self, method: str, metadata: Metadata | None) -> ServerCall:
        """Start the SERVER span for ``method``, continuing the caller's W3C trace if sent."""
        return _MethodCalls(self, rpc_method(method))(metadata)

    def server_calls(self, method: str) -> Callable[[Metadata | None], ServerCall]:
        """`start_server_span` for one method, its name split once (for the server
        middleware, which knows every method when the service is registered).
        """
        return _MethodCalls(self, rpc_method(method))

    def _global_provider(self) -> object:
        provider = _global_provider()
        if not isinstance(provider, ProxyTracerProvider):
            self._global = provider  # installed: it can never be replaced
        return provider

    def _record(self, call: ServerCall, code: grpc.StatusCode, error: str | None) -> None:
        duration_ns = perf_counter_ns() - call.start_ns
        names = call.rpc
        span = call.span
        # A NonRecordingSpan (the usual span when nothing exports) never records.
        if type(span) is not NonRecordingSpan and span.is_recording():
            span.set_attribute("rpc.grpc.status_code", status_number(code))
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, error))
        in_flight = call._in_flight
        if in_flight is not None:
            in_flight.pop()
        else:
            IN_FLIGHT.leave(names)
        if self._always_record or LIVENESS.live:
            self._duration.record(duration_ns / 1e6, names.metric_attributes(code))
        ctx = span.get_span_context()
        if type(ctx) is SpanContext and SPAN_CONTEXT_LAYOUT:  # its fields without the properties
            valid, trace_id, span_id = ctx[5], ctx[0], ctx[1]
        else:
            valid, trace_id, span_id = ctx.is_valid, ctx.trace_id, ctx.span_id
        if valid:
            try:  # the same digits as format(id, "032x") / format(id, "016x"), twice as fast
                trace_hex, span_hex = trace_id.to_bytes(16, "big").hex(), span_id.to_bytes(8, "big").hex()
            except OverflowError:  # not a W3C-sized id: never from OpenTelemetry's SpanContext
                trace_hex, span_hex = format(trace_id, "032x"), format(span_id, "016x")
        else:
            trace_hex = span_hex = "-"
        # StatusCode hashes in Python: the usual status skips the lookup.
        code_name, level = ("OK", "info") if code is _OK else _ACCESS_FIELDS[code]
        duration = _duration_ms(duration_ns)
        principal, client_id = call.principal, call.client_id
        if error is None and emit_access_line(
            level, names.full_name, code_name, duration, principal, client_id, trace_hex, span_hex
        ):
            return
        fields: dict[str, object] = {
            "event": "rpc",
            "logger": ACCESS_LOGGER,
            "method": names.full_name,
            "code": code_name,
            "duration_ms": duration,
            "principal": principal,
            "client_id": client_id,
            "trace_id": trace_hex,
            "span_id": span_hex,
        }
        if error is not None:
            fields["error"] = error
            if emit_json_line(level, fields):
                return
        del fields["event"]
        (self._log.warning if level == "warning" else self._log.info)("rpc", **fields)


class _MethodCalls:
    """`RpcTelemetry.start_server_span` bound to one method (see `RpcTelemetry.server_calls`)."""

    __slots__ = ("_in_flight", "_names", "_telemetry")

    def __init__(self, telemetry: RpcTelemetry, names: RpcMethod) -> None:
        self._telemetry = telemetry
        self._names = names
        self._in_flight: list[None] | None = None
        """The method's in-flight list, looked up at its first call (a method is
        reported from its first call on, as through `start_server_span`)."""

    def __call__(self, metadata: Metadata | None) -> ServerCall:
        telemetry, names = self._telemetry, self._names
        parent = extract_context(metadata)
        provider = telemetry._provider or telemetry._global or telemetry._global_provider()
        sampler = getattr(provider, "sampler", None)
        if type(sampler) is ExportGatedSampler:
            idle = sampler.delegate is ALWAYS_OFF  # what its `idle` says
        else:
            idle = isinstance(sampler, ExportGatedSampler) and sampler.idle
        if idle:
            span = unsampled_span(parent)
        else:
            span = telemetry._tracer.start_span(
                names.span_name, context=parent, kind=SpanKind.SERVER, attributes=names.span_attributes
            )
        in_flight = self._in_flight
        if in_flight is None:
            in_flight = self._in_flight = IN_FLIGHT.calls(names)
        in_flight.append(None)
        call = ServerCall(telemetry, names, span, parent)
        call._in_flight = in_flight
        return call


class ServerCall:
    """One inbound RPC: ``with`` makes its span current; `finish` records the outcome.

    Leaving the ``with`` block without `finish` records CANCELLED for a cancelled task
    and UNKNOWN otherwise, so the in-flight gauge never leaks.
    """

    __slots__ = (
        "_finished",
        "_in_flight",
        "_parent",
        "_telemetry",
        "_token",
        "client_id",
        "principal",
        "rpc",
        "span",
        "start_ns",
    )

    def __init__(self, telemetry: RpcTelemetry, rpc: RpcMethod, span: trace.Span, parent: Context | None) -> None:
        self.span = span
        self.rpc = rpc
        self.principal = "-"
        self.client_id = "-"
        self.start_ns = perf_counter_ns()
        self._telemetry = telemetry
        self._parent = parent
        self._token: Token[Context] | None = None
        self._finished = False
        self._in_flight: list[None] | None = None
        """The method's in-flight list (see `InFlight.calls`), when the telemetry counted the call in."""

    def __enter__(self) -> ServerCall:
        """Attach a context holding the span (and the caller's baggage)."""
        self._token = otel_context.attach(trace.set_span_in_context(self.span, self._parent))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Detach the context and end the span (finishing the call first if nobody did)."""
        try:
            if not self._finished:
                if isinstance(exc, asyncio.CancelledError):
                    self.finish(grpc.StatusCode.CANCELLED, "cancelled")
                else:
                    if exc is not None and self.span.is_recording():
                        self.span.record_exception(exc)
                    self.finish(grpc.StatusCode.UNKNOWN, None if exc is None else type(exc).__name__)
        finally:
            if self._token is not None:
                otel_context.detach(self._token)
                self._token = None
            span = self.span
            if type(span) is not NonRecordingSpan:  # whose end() does nothing
                span.end()

    @property
    def trace_id(self) -> str:
        """The span's trace id as 32 hex digits (for error details and logs)."""
        return format(self.span.get_span_context().trace_id, "032x")

    def set_principal(self, subject: str, client_id: str) -> None:
        """Name the authenticated caller on the span and in the access line."""
        self.principal = subject
        self.client_id = client_id
        span = self.span
        if type(span) is not NonRecordingSpan and span.is_recording():
            span.set_attributes({"enduser.id": subject, "furima.client_id": client_id})

    def finish(self, code: grpc.StatusCode, error: str | None = None) -> None:
        """Record status, duration and the access line; later calls are ignored."""
        if self._finished:
            return
        self._finished = True
        self._telemetry._record(self, code, error)  # RpcTelemetry holds the instruments
