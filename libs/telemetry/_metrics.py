"""Metrics: an SDK meter provider that exports over OTLP only when an endpoint is configured.

Without a reader the SDK still accepts measurements but stores none: a ``record`` is
one small object and an empty loop. With an endpoint, a periodic reader pushes to the
collector (``OTEL_METRIC_EXPORT_INTERVAL``, default 60 s), which Prometheus scrapes.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from libs.telemetry._env import metrics_endpoint_configured


def build_meter_provider(resource: Resource) -> MeterProvider:
    """Build the meter provider: OTLP/gRPC export when configured, else no readers."""
    readers: list[MetricReader] = []
    if metrics_endpoint_configured():
        # Imported lazily: the exporter pulls in the OTLP protobufs.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter,
        )

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return MeterProvider(resource=resource, metric_readers=readers)
