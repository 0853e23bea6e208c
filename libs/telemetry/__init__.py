"""Telemetry: OpenTelemetry tracing and metrics, structlog logging, per-RPC instrumentation.

Call `setup_telemetry` once at process start; the RPC middleware uses `RpcTelemetry`
on the server side and `start_client_span` + `inject_context` on the client side.
"""

from libs.telemetry._logging import REDACTED, SECRET_KEYS, configure_logging, flush_logs, redact_secrets
from libs.telemetry._metrics import add_metric_reader
from libs.telemetry._rpc import RpcTelemetry, ServerCall
from libs.telemetry._setup import Telemetry, setup_telemetry
from libs.telemetry._tracing import (
    add_span_exporter,
    extract_context,
    inject_context,
    start_client_span,
)

__all__ = [
    "REDACTED",
    "SECRET_KEYS",
    "RpcTelemetry",
    "ServerCall",
    "Telemetry",
    "add_metric_reader",
    "add_span_exporter",
    "configure_logging",
    "flush_logs",
    "extract_context",
    "inject_context",
    "redact_secrets",
    "start_client_span",
    "setup_telemetry",
]
