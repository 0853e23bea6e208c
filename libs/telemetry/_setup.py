"""Process-wide setup: resource, global providers, propagators and logging, once."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from libs.telemetry import _env
from libs.telemetry._logging import configure_logging, get_logger
from libs.telemetry._metrics import add_metric_reader, build_meter_provider
from libs.telemetry._tracing import (
    add_span_exporter,
    attach_processor,
    build_tracer_provider,
    install_propagators,
)


@dataclass(frozen=True)
class Telemetry:
    """What `setup_telemetry` installed; shut it down last on graceful exit."""

    service_name: str
    """The effective ``service.name`` (``OTEL_SERVICE_NAME`` wins over the code's name)."""
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporting: bool
    """Whether spans go to an OTLP collector."""

    def add_span_exporter(self, exporter: SpanExporter) -> None:
        """Export spans ended from now on to ``exporter`` as well (synchronously)."""
        add_span_exporter(exporter, self.tracer_provider)

    def add_metric_reader(self, reader: MetricReader) -> None:
        """Attach a metric reader (Prometheus, in-memory) to the installed provider."""
        add_metric_reader(reader, self.meter_provider)

    def force_flush(self, timeout_millis: int = 5_000) -> None:
        """Push buffered spans and metrics out now."""
        self.tracer_provider.force_flush(timeout_millis)
        self.meter_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop the exporters (the SDK also does this at interpreter exit)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_lock = threading.Lock()
_installed: Telemetry | None = None


def setup_telemetry(
    service_name: str,
    *,
    span_exporter: SpanExporter | None = None,
    log_format: str | None = None,
) -> Telemetry:
    """Install tracing, metrics, propagation and logging for this process, once.

    Later calls return the first call's `Telemetry` and only attach ``span_exporter``,
    since OpenTelemetry's global providers can be set only once per process.
    ``log_format`` defaults to ``FURIMA_LOG_FORMAT``, else console on a TTY, else json.
    """
    global _installed  # the process-wide singleton is the point
    with _lock:
        if _installed is None:
            _installed = _install(service_name, log_format)
        installed = _installed
    if span_exporter is not None:
        installed.add_span_exporter(span_exporter)
    return installed


def _install(service_name: str, log_format: str | None) -> Telemetry:
    resource = _resource(service_name)
    name = str(resource.attributes[SERVICE_NAME])
    configure_logging(name, log_format or _env.log_format(), _env.log_level())
    install_propagators()

    tracer_provider = _adopt_or_set_tracer_provider(build_tracer_provider(resource))
    exporting = _env.traces_endpoint_configured()
    if exporting:
        # Imported lazily: the exporter pulls in the OTLP protobufs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        attach_processor(tracer_provider, BatchSpanProcessor(OTLPSpanExporter()))

    meter_provider = build_meter_provider(resource)
    current_meters = metrics.get_meter_provider()
    if isinstance(current_meters, MeterProvider):
        meter_provider.shutdown()
        meter_provider = current_meters
    else:
        metrics.set_meter_provider(meter_provider)
    return Telemetry(name, tracer_provider, meter_provider, exporting)


def _resource(service_name: str) -> Resource:
    # Resource.create lets code attributes override the environment; the spec wants
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES to win, so only fill the gap.
    from_env = OTELResourceDetector().detect().attributes
    return Resource.create({} if from_env.get(SERVICE_NAME) else {SERVICE_NAME: service_name})


def _adopt_or_set_tracer_provider(provider: TracerProvider) -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Someone (an auto-instrumentation agent, a test) installed an SDK provider first.
        provider.shutdown()
        return current
    trace.set_tracer_provider(provider)
    installed = trace.get_tracer_provider()
    if installed is not provider:
        get_logger("furima.telemetry").warning(
            "telemetry.foreign_tracer_provider", logger="furima.telemetry", provider=type(installed).__name__
        )
    return provider
