"""Server bootstrap: a `grpc.aio` server with the shared middleware, health, reflection,
keepalive, message-size limits and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, cast

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

from libs.auth import Authorizer, TokenVerifier
from libs.rpc._config import ServerConfig
from libs.rpc._middleware import ServerMiddleware, WrappingRegistrar
from libs.telemetry import RpcTelemetry, flush_logs

log = structlog.get_logger("furima.server")

Register = Callable[[Any, grpc.aio.Server], None]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServer:
    """One service process's gRPC server."""

    def __init__(
        self,
        *,
        service_name: str,
        config: ServerConfig,
        verifier: TokenVerifier,
        telemetry: RpcTelemetry | None = None,
    ) -> None:
        self.service_name = service_name
        self.config = config
        self.middleware = ServerMiddleware(service_name, Authorizer(verifier), telemetry or RpcTelemetry(service_name))
        self.health = HealthServicer()
        self._services: list[str] = []
        self._server = grpc.aio.server(
            options=_server_options(config),
            maximum_concurrent_rpcs=config.max_concurrent_rpcs or None,
        )
        self.port = 0
        self._stopping = asyncio.Event()

    def add(self, register: Register, servicer: Any, descriptor: ServiceDescriptor) -> None:
        """Serve ``servicer`` (registered by the generated ``add_XServicer_to_server``),
        each method wrapped in the shared middleware.
        """
        registrar = WrappingRegistrar(self._server, self.middleware)
        register(servicer, cast(grpc.aio.Server, registrar))
        if registrar.registered != [descriptor.full_name]:
            raise TypeError(f"{descriptor.full_name}: regenerate the stubs (make protos); got {registrar.registered}")
        self._services.append(descriptor.full_name)

    @property
    def services(self) -> list[str]:
        """Full names of the services added so far."""
        return list(self._services)

    async def start(self) -> int:
        """Bind, start serving, and report SERVING; returns the bound port."""
        # What enable_server_reflection registers on a grpc.aio server, served generically.
        infrastructure = cast(grpc.aio.Server, _GenericOnly(self._server))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, infrastructure)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            ReflectionServicer(
                [*self._services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
            ),
            infrastructure,
        )
        self.port = self._server.add_insecure_port(f"{self.config.host}:{self.config.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {self.config.host}:{self.config.port}")
        await self._server.start()
        for name in ["", *self._services]:
            await self.health.set(name, SERVING)
        log.info("server_started", service=self.service_name, address=f"{self.config.host}:{self.port}")
        return self.port

    @property
    def address(self) -> str:
        """``host:port`` clients can dial."""
        return f"{self.config.host}:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, let in-flight calls finish within ``grace``, then stop."""
        await self.health.enter_graceful_shutdown()
        grace = self.config.shutdown_grace_s if grace is None else grace
        await self._server.stop(grace)
        # Cancelled calls may still be unwinding (closing a database connection, say):
        # let them finish before the caller closes what they use.
        await self.middleware.drain(within=grace + 5.0)
        flush_logs()
        log.info("server_stopped", service=self.service_name)

    async def run_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        log.info("shutdown_requested", service=self.service_name)
        await self.stop()

    def request_stop(self) -> None:
        """Ask `run_until_signal` to shut down (as a signal would)."""
        self._stopping.set()


class _GenericOnly:
    """The server, as a generated ``add_XServicer_to_server`` sees it, without registered
    methods: their calls are served through the generic handler it adds as well.

    grpc.aio keeps one pending request per registered method and waits on all of them
    for every call it accepts; health and reflection, served generically, add nothing
    to that wait (the services' own methods are served generically too, see
    `WrappingRegistrar`).
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Serve ``handlers`` (the same methods as the registered ones)."""
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        """Skipped: the generic handler serves these methods."""


def _server_options(config: ServerConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        # Off by default so a second copy of the stack fails loudly instead of sharing a port.
        ("grpc.so_reuseport", int(config.reuse_port)),
    ]
