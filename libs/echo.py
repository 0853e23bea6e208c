"""A trivial servicer of ``furima.testing.v1.EchoService`` for tests and benchmarks.

It exercises the whole shared runtime (auth, telemetry, logging, errors) with no domain
logic, so its cost is the runtime's cost. It is never served by the production stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from furima.testing.v1 import echo_service_pb2, echo_service_pb2_grpc

from libs.auth import optional_principal

Downstream = Callable[[str], Awaitable[str]]


class EchoServicer(echo_service_pb2_grpc.EchoServiceServicer):
    """Answers with the message and the caller's subject; may call a downstream first."""

    def __init__(self, downstream: Downstream | None = None) -> None:
        self.downstream = downstream

    async def Echo(  # noqa: N802 — the gRPC method name
        self, request: echo_service_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_service_pb2.EchoResponse:
        """Echo the message (through the downstream, when there is one)."""
        message = request.message
        if self.downstream is not None:
            message = await self.downstream(message)
        principal = optional_principal()
        return echo_service_pb2.EchoResponse(message=message, subject=principal.subject if principal else "")


ECHO_SERVICE = echo_service_pb2.DESCRIPTOR.services_by_name["EchoService"]
register_echo = echo_service_pb2_grpc.add_EchoServiceServicer_to_server
