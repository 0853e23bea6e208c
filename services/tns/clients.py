"""TnS's clients of other services (adapters behind the ports the use cases define)."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
from furima.id.v1 import user_service_pb2, user_service_pb2_grpc

from libs.errors import NotFound, Unavailable


class GrpcUserAdmin:
    """`UserAdmin` over the ID service's ``UserService`` (needs ``id.users.admin``)."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 5.0) -> None:
        self._stub = user_service_pb2_grpc.UserServiceStub(channel)
        self._timeout = timeout

    async def suspend(self, user_id: str, reason: str) -> None:
        """``SuspendUser``."""
        await self._call(
            self._stub.SuspendUser(
                user_service_pb2.SuspendUserRequest(user_id=user_id, reason=reason), timeout=self._timeout
            )
        )

    async def reinstate(self, user_id: str, reason: str) -> None:
        """``ReinstateUser``."""
        await self._call(
            self._stub.ReinstateUser(
                user_service_pb2.ReinstateUserRequest(user_id=user_id, reason=reason), timeout=self._timeout
            )
        )

    @staticmethod
    async def _call(call: Awaitable[object]) -> None:
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(exc.details() or "user not found") from exc
            raise Unavailable(f"ID service: {exc.code().name}: {exc.details()}") from exc
