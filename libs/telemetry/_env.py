"""The ``OTEL_*`` / ``FURIMA_*`` variables this package reads itself.

Everything else (headers, TLS, timeouts, sampler, resource attributes) is read by the
SDK and the OTLP exporters directly.
"""

from __future__ import annotations

import os
import sys

_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"


def _exporter_enabled(signal: str) -> bool:
    # OTEL_TRACES_EXPORTER=none / OTEL_METRICS_EXPORTER=none switch a signal off.
    return os.environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() != "none"


def traces_endpoint_configured() -> bool:
    """Tell whether spans should go to an OTLP/gRPC collector."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(_ENDPOINT)
    return bool(endpoint) and _exporter_enabled("TRACES")


def metrics_endpoint_configured() -> bool:
    """Tell whether metrics should go to an OTLP/gRPC collector."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get(_ENDPOINT)
    return bool(endpoint) and _exporter_enabled("METRICS")


def log_format() -> str:
    """Read ``FURIMA_LOG_FORMAT`` (json|console); by default console on a terminal, JSON otherwise."""
    configured = os.environ.get("FURIMA_LOG_FORMAT", "").strip().lower()
    if configured:
        return configured
    return "console" if sys.stderr.isatty() else "json"


def log_level() -> str:
    """Read ``FURIMA_LOG_LEVEL``, default INFO."""
    return os.environ.get("FURIMA_LOG_LEVEL", "INFO").strip().upper() or "INFO"
