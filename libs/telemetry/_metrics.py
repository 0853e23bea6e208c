"""Metrics: an SDK meter provider that exports over OTLP only when an endpoint is configured.

Even without readers the SDK builds and cleans a measurement per call (~3 us, more
under load), so the RPC code records the duration histogram only while metrics are
*live*: a reader was configured at setup or attached with `add_metric_reader`. The
in-flight count is kept as plain per-method integers and observed at collection time,
so it costs no measurement per call at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from libs.telemetry._env import metrics_endpoint_configured
from libs.telemetry._methods import RpcMethod


class _Liveness:
    """Whether the global meter provider has a reader (set here, read on every RPC)."""

    live = False


LIVENESS = _Liveness()


def build_meter_provider(resource: Resource) -> MeterProvider:
    """Build the meter provider: OTLP/gRPC export when configured, else no readers."""
    readers: list[MetricReader] = []
    if metrics_endpoint_configured():
        # Imported lazily: the exporter pulls in the OTLP protobufs.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter,
        )

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        LIVENESS.live = True
    return MeterProvider(resource=resource, metric_readers=readers)


def add_metric_reader(reader: MetricReader, provider: MeterProvider | None = None) -> None:
    """Attach a reader (e.g. Prometheus, or in-memory in tests) and start recording RPC durations.

    Uses the global SDK provider unless one is given; ``setup_telemetry`` must have run.
    """
    target = provider if provider is not None else metrics.get_meter_provider()
    if not isinstance(target, MeterProvider):
        msg = "no SDK MeterProvider is installed; call setup_telemetry() first"
        raise TypeError(msg)
    target.add_metric_reader(reader)
    LIVENESS.live = True


class InFlight:
    """Per-method counts of RPCs in progress, reported by an observable up-down counter.

    A method's count is the length of its list: a call appends and pops one entry, each
    a single atomic operation, so the per-call path takes no lock (the lock only guards
    the first sight of a method and the snapshot taken at collection).
    """

    def __init__(self) -> None:
        self._calls: dict[str, tuple[list[None], dict[str, str]]] = {}
        self._lock = threading.Lock()

    def calls(self, method: RpcMethod) -> list[None]:
        """The list whose length is the number of calls of ``method`` in flight
        (``append(None)`` when one starts, ``pop()`` when it ends).
        """
        entry = self._calls.get(method.full_name)
        if entry is None:
            with self._lock:
                entry = self._calls.setdefault(method.full_name, ([], method.span_attributes))
        return entry[0]

    def enter(self, method: RpcMethod) -> None:
        """Count one more call of ``method``."""
        self.calls(method).append(None)

    def leave(self, method: RpcMethod) -> None:
        """Count one call of ``method`` fewer."""
        self._calls[method.full_name][0].pop()

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        """Report every method seen so far (zero included, so series do not vanish)."""
        with self._lock:
            entries = list(self._calls.values())
        return [Observation(len(calls), attributes) for calls, attributes in entries]


IN_FLIGHT = InFlight()
"""Process-wide: an observable instrument is registered once per meter, however many servers."""
