"""Tracing: the SDK tracer provider, W3C propagation over gRPC metadata, client spans.

When nothing exports, the provider stays an SDK one so every request still gets a trace
id for log correlation (continuing the caller's trace id when it sent one), but no span
is recorded: the export-gated sampler then acts as ``always_off``. A span then costs one
``NonRecordingSpan`` (a random span id, no attributes, no processor calls: ~3 us
against ~30 us for a recorded one), whatever the caller sends. The price: the sampled
flag this service passes on is 0, so a non-exporting hop between exporting services cuts
their trace; set ``OTEL_TRACES_SAMPLER=parentbased_always_off`` on such a service to
record (uselessly, but keep the flag for) requests its callers sampled. An explicit
``OTEL_TRACES_SAMPLER`` always wins, e.g. ``parentbased_traceidratio`` with
``OTEL_TRACES_SAMPLER_ARG=0.1`` to bound the recording cost of an exporting service.
"""

from __future__ import annotations

import functools
import os
import random
import threading
from collections.abc import Iterator, MutableSequence, Sequence
from contextlib import contextmanager

import grpc
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_PROPAGATORS
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.environment_variables import OTEL_TRACES_SAMPLER
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,  # the SDK's own OTEL_TRACES_SAMPLER parsing
)
from opentelemetry.trace import INVALID_SPAN_ID, INVALID_TRACE_ID, Link, NonRecordingSpan, SpanContext, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState
from opentelemetry.util.types import Attributes

from libs.telemetry._methods import rpc_method, status_number

Metadata = Sequence[tuple[str, str | bytes]]
"""gRPC invocation metadata as grpc hands it over: ``-bin`` keys carry bytes."""

TRACER_NAME = "furima.rpc"


class _MetadataGetter(Getter[Metadata]):
    """Reads propagation headers out of gRPC metadata tuples (keys are lowercase)."""

    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        values = [v if isinstance(v, str) else v.decode("latin-1") for k, v in carrier if k == key]
        return values or None

    def keys(self, carrier: Metadata) -> list[str]:
        return [k for k, _ in carrier]


class _MetadataSetter(Setter[list[tuple[str, str]]]):
    """Writes propagation headers into an outgoing metadata list."""

    def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key, value))


_GETTER = _MetadataGetter()
_SETTER = _MetadataSetter()


def install_propagators() -> None:
    """Make W3C trace context + baggage the global propagator unless OTEL_PROPAGATORS says otherwise."""
    if OTEL_PROPAGATORS not in os.environ:
        propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))


class _PropagationFields:
    """The header names the global propagator reads, recomputed only when it changes.

    Lets the server skip ``propagate.extract`` (and its context churn) for the common
    call that carries no trace headers at all.
    """

    def __init__(self) -> None:
        self._textmap: object = None
        self._fields: frozenset[str] = frozenset()

    def get(self) -> frozenset[str]:
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._fields = frozenset(textmap.fields)
            self._textmap = textmap
        return self._fields


_FIELDS = _PropagationFields()


def extract_context(metadata: Metadata | None) -> Context | None:
    """Return the remote parent context (trace + baggage) carried by incoming metadata, if any."""
    if not metadata:
        return None
    fields = _FIELDS._fields if propagate.get_global_textmap() is _FIELDS._textmap else _FIELDS.get()
    for key, _ in metadata:
        if key in fields:
            return propagate.extract(metadata, getter=_GETTER)
    return None


def inject_context(metadata: MutableSequence[tuple[str, str]] | MutableSequence[tuple[str, str | bytes]]) -> None:
    """Append the current context's W3C headers to outgoing metadata, replacing stale ones."""
    injected: list[tuple[str, str]] = []
    propagate.inject(injected, setter=_SETTER)
    if not injected:
        return
    names = {k for k, _ in injected}
    for index in range(len(metadata) - 1, -1, -1):
        if metadata[index][0] in names:
            del metadata[index]
    metadata.extend(injected)


@functools.cache
def _client_tracer() -> trace.Tracer:
    # Built once: get_tracer makes a new tracer on every call (a hot path). Asked before a
    # provider is set, it is OpenTelemetry's proxy, which follows the provider once set.
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def start_client_span(method: str) -> Iterator[trace.Span]:
    """Open a current CLIENT span for an outgoing call; an escaping exception marks it ERROR.

    Call ``inject_context`` inside the block so the server's span becomes its child. A
    gRPC error leaving the block also records its status code on the span.
    """
    names = rpc_method(method)
    tracer = _client_tracer()
    with tracer.start_as_current_span(names.span_name, kind=SpanKind.CLIENT, attributes=names.span_attributes) as span:
        try:
            yield span
        except grpc.RpcError as error:
            if isinstance(error, grpc.aio.AioRpcError | grpc.Call) and span.is_recording():
                span.set_attribute("rpc.grpc.status_code", status_number(error.code()))
            raise
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", 0)


class ExportGatedSampler(Sampler):
    """Delegates to the configured sampler while something exports, else records nothing new.

    Tests attach exporters after the global provider exists; flipping the delegate makes
    that work without replacing the (set-once) global provider.
    """

    def __init__(self, exporting: Sampler, idle: Sampler = ALWAYS_OFF) -> None:
        self._exporting = exporting
        self._idle = idle
        self.delegate = idle

    def open(self) -> None:
        """Switch to the configured sampler: an exporter is attached."""
        self.delegate = self._exporting

    @property
    def idle(self) -> bool:
        """Whether nothing is sampled now (no exporter yet, and the idle sampler is off)."""
        return self.delegate is ALWAYS_OFF

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Ask the current delegate."""
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        """Name the delegate, for debugging."""
        return f"ExportGated{{{self.delegate.get_description()}}}"


_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)


def _span_context_layout_holds() -> bool:
    """Whether this OpenTelemetry release still lays a SpanContext out as the tuple
    (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid), so that one can be
    built without its constructor re-checking ids known to be valid.
    """
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    fields = (trace_id, span_id, False, _NOT_SAMPLED, DEFAULT_TRACE_STATE, True)
    built: SpanContext = tuple.__new__(SpanContext, fields)  # type: ignore[type-var]
    reference = SpanContext(trace_id, span_id, is_remote=False, trace_flags=_NOT_SAMPLED, trace_state=None)
    return (
        built == reference
        and (built.trace_id, built.span_id, built.is_remote, built.is_valid) == (trace_id, span_id, False, True)
        and built.trace_flags is reference.trace_flags
        and built.trace_state is reference.trace_state
    )


SPAN_CONTEXT_LAYOUT = _span_context_layout_holds()
"""Whether a SpanContext is that tuple here (checked once, at import)."""


def unsampled_span(parent: Context | None) -> trace.Span:
    """What the SDK returns for a span its sampler drops, without the SDK's per-span work:
    a non-recording span in the caller's trace (or a new one), with fresh ids for logs
    and for propagation downstream.

    The ids are drawn as the SDK's `RandomIdGenerator` draws them (trace id first, then
    span id, never zero).
    """
    remote = trace.get_current_span(parent).get_span_context() if parent is not None else None
    if remote is not None and remote.is_valid:
        trace_id, state = remote.trace_id, remote.trace_state
    else:
        trace_id, state = random.getrandbits(128), DEFAULT_TRACE_STATE
        while trace_id == INVALID_TRACE_ID:
            trace_id = random.getrandbits(128)
    span_id = random.getrandbits(64)
    while span_id == INVALID_SPAN_ID:
        span_id = random.getrandbits(64)
    if SPAN_CONTEXT_LAYOUT:  # what the constructor builds for valid ids
        context: SpanContext = tuple.__new__(SpanContext, (trace_id, span_id, False, _NOT_SAMPLED, state, True))  # type: ignore[type-var]
    else:
        context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=_NOT_SAMPLED, trace_state=state)
    return NonRecordingSpan(context)


_LOCK = threading.Lock()


def build_tracer_provider(resource: Resource) -> TracerProvider:
    """Build an SDK provider that records only once an exporter is attached (unless the env picks a sampler)."""
    sampler = _get_from_env_or_default()
    if OTEL_TRACES_SAMPLER not in os.environ:
        sampler = ExportGatedSampler(sampler)
    return TracerProvider(resource=resource, sampler=sampler)


def add_span_exporter(exporter: SpanExporter, provider: TracerProvider | None = None) -> None:
    """Export every span ended from now on to ``exporter``, synchronously (tests, debugging).

    Uses the global SDK provider unless one is given; ``setup_telemetry`` must have run.
    """
    target = provider if provider is not None else trace.get_tracer_provider()
    if not isinstance(target, TracerProvider):
        msg = "no SDK TracerProvider is installed; call setup_telemetry() first"
        raise TypeError(msg)
    attach_processor(target, SimpleSpanProcessor(exporter))


def attach_processor(provider: TracerProvider, processor: SpanProcessor) -> None:
    """Add a span processor and open the export gate."""
    with _LOCK:
        provider.add_span_processor(processor)
        if isinstance(provider.sampler, ExportGatedSampler):
            provider.sampler.open()
