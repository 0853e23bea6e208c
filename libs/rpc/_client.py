"""Client side: channels that carry the caller's token, trace context and deadline, and
retry only methods the contract marks idempotent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

from libs.rpc._deadline import outgoing_timeout
from libs.telemetry import inject_context, start_client_span


class TokenSource(Protocol):
    """Gives the bearer token to attach to outgoing calls."""

    async def token(self) -> str:
        """A currently valid access token."""
        ...


_on_behalf_of: ContextVar[str | None] = ContextVar("furima_on_behalf_of", default=None)


@contextmanager
def acting_for(token: str) -> Iterator[None]:
    """Within the block, outgoing calls carry ``token`` (an exchanged, on-behalf-of-user
    token) instead of the service's own token.
    """
    reset = _on_behalf_of.set(token)
    try:
        yield
    finally:
        _on_behalf_of.reset(reset)


class _Outgoing:
    """Shared logic of the client interceptors: token, trace context, deadline."""

    def __init__(self, tokens: TokenSource | None) -> None:
        self.tokens = tokens

    async def details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata: list[tuple[str, str | bytes]] = list(details.metadata or ())
        token = _on_behalf_of.get()
        if token is None and self.tokens is not None:
            token = await self.tokens.token()
        if token is not None and not any(k == "authorization" for k, _ in metadata):
            metadata.append(("authorization", f"Bearer {token}"))
        inject_context(metadata)  # type: ignore[arg-type]
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=outgoing_timeout(details.timeout),
            metadata=grpc.aio.Metadata(*metadata),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class _UnaryUnary(_Outgoing, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else method
        with start_client_span(name):
            call = await continuation(await self.details(client_call_details), request)
            await call  # end the span when the call ends; errors reach the caller as usual
            return call


class _UnaryStream(_Outgoing, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(await self.details(client_call_details), request)


def retry_service_config(services: Iterable[ServiceDescriptor], *, max_attempts: int = 4) -> dict[str, Any]:
    """A gRPC service config that retries UNAVAILABLE only for methods whose contract
    says they are safe to repeat (``idempotency_level`` NO_SIDE_EFFECTS or IDEMPOTENT).
    """
    safe = {MethodOptions.NO_SIDE_EFFECTS, MethodOptions.IDEMPOTENT}
    names = [
        {"service": service.full_name, "method": method.name}
        for service in services
        for method in service.methods
        if _idempotency(method) in safe
    ]
    if not names:
        return {}
    return {
        "methodConfig": [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }


def _idempotency(method: MethodDescriptor) -> int:
    return int(method.GetOptions().idempotency_level)


def make_channel(
    target: str,
    *,
    services: Iterable[ServiceDescriptor] = (),
    tokens: TokenSource | None = None,
    max_message_bytes: int = 4 * 1024 * 1024,
) -> grpc.aio.Channel:
    """A channel to another furima service (or a test server).

    ``services`` are the descriptors of the services called through it, used to derive
    the retry policy; ``tokens`` supplies the caller's own token.
    """
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.enable_retries", 1),
        # A restarted dependency is reached again within seconds, not after gRPC's default
        # of up to two minutes of reconnect backoff.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]
    config = retry_service_config(services)
    if config:
        options.append(("grpc.service_config", json.dumps(config)))
    interceptors: list[Any] = [_UnaryUnary(tokens), _UnaryStream(tokens)]
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


class CachedToken:
    """A token and when to replace it (at 80% of its lifetime)."""

    def __init__(self, value: str, expires_in: float) -> None:
        self.value = value
        self.refresh_at = time.monotonic() + expires_in * 0.8


class RefreshingTokenSource:
    """Caches a token obtained by ``fetch`` and fetches a new one before it expires.

    Concurrent callers share one fetch.
    """

    def __init__(self, fetch: Any) -> None:
        self._fetch = fetch
        self._cached: CachedToken | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """A token with at least a fifth of its lifetime left."""
        cached = self._cached
        if cached is not None and time.monotonic() < cached.refresh_at:
            return cached.value
        async with self._lock:
            cached = self._cached
            if cached is None or time.monotonic() >= cached.refresh_at:
                value, expires_in = await self._fetch()
                cached = self._cached = CachedToken(value, expires_in)
            return cached.value
