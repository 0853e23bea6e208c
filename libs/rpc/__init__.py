"""The shared gRPC runtime: server bootstrap, middleware, client channels, error mapping."""

from libs.rpc._client import RefreshingTokenSource, TokenSource, acting_for, make_channel, retry_service_config
from libs.rpc._config import ServerConfig
from libs.rpc._deadline import outgoing_timeout, remaining
from libs.rpc._errors import error_details, status_code_of, to_status
from libs.rpc._gc import tune_gc_for_serving
from libs.rpc._server import GrpcServer

__all__ = [
    "GrpcServer",
    "RefreshingTokenSource",
    "ServerConfig",
    "TokenSource",
    "acting_for",
    "error_details",
    "make_channel",
    "outgoing_timeout",
    "remaining",
    "retry_service_config",
    "status_code_of",
    "to_status",
    "tune_gc_for_serving",
]
