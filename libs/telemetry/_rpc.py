"""Per-RPC telemetry for the server middleware: a span, two metrics and one access line.

This runs on every call, so the hot path avoids per-call dicts: method names are split
once (bounded cache), instruments are created up front, attribute mappings are shared,
and calls that carry no trace headers skip propagation entirely.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextvars import Token
from time import perf_counter_ns
from types import TracebackType

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from libs.telemetry._logging import emit_json_line, get_logger
from libs.telemetry._methods import RpcMethod, rpc_method, status_number
from libs.telemetry._metrics import IN_FLIGHT, LIVENESS
from libs.telemetry._tracing import TRACER_NAME, extract_context, sampling_is_idle, unsampled_span

ACCESS_LOGGER = "furima.access"

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


def _global_provider() -> object:
    return trace.get_tracer_provider()


class RpcTelemetry:
    """Creates a `ServerCall` per inbound RPC; one instance per server, built at startup.

    The providers default to the global ones (which may be installed later: the API
    proxies forward once ``setup_telemetry`` runs); tests pass their own.
    """

    __slots__ = ("_always_record", "_duration", "_log", "_provider", "_tracer", "service_name")

    def __init__(
        self,
        service_name: str,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.service_name = service_name
        self._provider = tracer_provider
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

    def start_server_span(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> ServerCall:
        """Start the SERVER span for ``method``, continuing the caller's W3C trace if sent."""
        names = rpc_method(method)
        parent = extract_context(metadata)
        if sampling_is_idle(self._provider or _global_provider()):
            span = unsampled_span(parent)
        else:
            span = self._tracer.start_span(
                names.span_name, context=parent, kind=SpanKind.SERVER, attributes=names.span_attributes
            )
        IN_FLIGHT.enter(names)
        return ServerCall(self, names, span, parent)

    def _record(self, call: ServerCall, code: grpc.StatusCode, error: str | None) -> None:
        duration_ns = perf_counter_ns() - call.start_ns
        duration_ms = duration_ns / 1e6
        names = call.rpc
        span = call.span
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", status_number(code))
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, error))
        IN_FLIGHT.leave(names)
        if self._always_record or LIVENESS.live:
            self._duration.record(duration_ms, names.metric_attributes(code))
        ctx = span.get_span_context()
        valid = ctx.is_valid
        fields: dict[str, object] = {
            "event": "rpc",
            "logger": ACCESS_LOGGER,
            "method": names.full_name,
            "code": code.name,
            "duration_ms": round(duration_ms, 3),
            "principal": call.principal,
            "client_id": call.client_id,
            "trace_id": format(ctx.trace_id, "032x") if valid else "-",
            "span_id": format(ctx.span_id, "016x") if valid else "-",
        }
        if error is not None:
            fields["error"] = error
        level = "warning" if code in _SERVER_FAULTS else "info"
        if not emit_json_line(level, fields):
            del fields["event"]
            (self._log.warning if level == "warning" else self._log.info)("rpc", **fields)


class ServerCall:
    """One inbound RPC: ``with`` makes its span current; `finish` records the outcome.

    Leaving the ``with`` block without `finish` records CANCELLED for a cancelled task
    and UNKNOWN otherwise, so the in-flight gauge never leaks.
    """

    __slots__ = (
        "_finished",
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
            self.span.end()

    @property
    def trace_id(self) -> str:
        """The span's trace id as 32 hex digits (for error details and logs)."""
        return format(self.span.get_span_context().trace_id, "032x")

    def set_principal(self, subject: str, client_id: str) -> None:
        """Name the authenticated caller on the span and in the access line."""
        self.principal = subject
        self.client_id = client_id
        if self.span.is_recording():
            self.span.set_attributes({"enduser.id": subject, "furima.client_id": client_id})

    def finish(self, code: grpc.StatusCode, error: str | None = None) -> None:
        """Record status, duration and the access line; later calls are ignored."""
        if self._finished:
            return
        self._finished = True
        self._telemetry._record(self, code, error)  # RpcTelemetry holds the instruments
