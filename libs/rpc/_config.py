"""Server settings, parsed once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from libs.config import env_bool, env_float, env_int, env_str


@dataclass(frozen=True)
class ServerConfig:
    """How a service's gRPC server listens and behaves."""

    host: str = "127.0.0.1"
    """Interface to bind (``0.0.0.0`` in containers)."""
    port: int = 0
    """Port to bind; 0 picks a free one (tests)."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest request or response accepted."""
    keepalive_time_s: float = 30.0
    """Ping an idle client connection this often."""
    keepalive_timeout_s: float = 10.0
    """Drop a connection whose ping is not answered in time."""
    shutdown_grace_s: float = 10.0
    """How long in-flight calls may finish after SIGTERM."""
    max_concurrent_rpcs: int = 0
    """Cap on concurrent calls (0 = unlimited); excess calls get RESOURCE_EXHAUSTED."""
    reuse_port: bool = False
    """SO_REUSEPORT, so several processes of one service can share a port on one host."""

    @classmethod
    def from_env(cls, prefix: str, default_port: int) -> ServerConfig:
        """Read ``<PREFIX>_HOST``, ``<PREFIX>_PORT``, ... with the given default port."""
        return cls(
            host=env_str(f"{prefix}_HOST", "127.0.0.1"),
            port=env_int(f"{prefix}_PORT", default_port),
            max_message_bytes=env_int(f"{prefix}_MAX_MESSAGE_BYTES", 4 * 1024 * 1024),
            keepalive_time_s=env_float(f"{prefix}_KEEPALIVE_TIME_S", 30.0),
            keepalive_timeout_s=env_float(f"{prefix}_KEEPALIVE_TIMEOUT_S", 10.0),
            shutdown_grace_s=env_float(f"{prefix}_SHUTDOWN_GRACE_S", 10.0),
            max_concurrent_rpcs=env_int(f"{prefix}_MAX_CONCURRENT_RPCS", 0),
            reuse_port=env_bool(f"{prefix}_REUSE_PORT", False),
        )
