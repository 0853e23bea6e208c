"""UserService servicer."""

from __future__ import annotations

from furima.id.v1 import user_service_pb2 as pb
from furima.id.v1 import user_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import Violations
from services.id.api._convert import Context, source_of, token_set_pb, user_pb
from services.id.domain.users import EMAIL_MAX, PASSWORD_MAX
from services.id.service.users import UserService


class UserServicer(pb_grpc.UserServiceServicer):
    """Users and their credentials."""

    def __init__(self, users: UserService) -> None:
        self._users = users

    async def SignUp(self, request: pb.SignUpRequest, context: Context) -> pb.SignUpResponse:
        """Register a user (the use case validates every field)."""
        user = await self._users.sign_up(request.email, request.password, request.display_name, request.region)
        return pb.SignUpResponse(user=user_pb(user))

    async def SignIn(self, request: pb.SignInRequest, context: Context) -> pb.SignInResponse:
        """Check a password and return tokens, throttled per account and source."""
        v = Violations()
        v.require(request.email, "email")
        v.require(request.password, "password")
        if len(request.email) > EMAIL_MAX:
            v.add("email", f"must be at most {EMAIL_MAX} characters")
        if len(request.password) > PASSWORD_MAX:
            v.add("password", f"must be at most {PASSWORD_MAX} characters")
        v.raise_if_any()
        user, tokens = await self._users.sign_in(
            request.email, request.password, client_id=request.client_id, scope=request.scope, source=source_of(context)
        )
        return pb.SignInResponse(user=user_pb(user), tokens=token_set_pb(tokens))

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        """Read a user: oneself, or anyone with id.users.read."""
        v = Violations()
        v.require(request.user_id, "user_id")
        v.raise_if_any()
        user = await self._users.get_user(current_principal(), request.user_id)
        return pb.GetUserResponse(user=user_pb(user))

    async def SuspendUser(self, request: pb.SuspendUserRequest, context: Context) -> pb.SuspendUserResponse:
        """Suspend a user (idempotent)."""
        v = Violations()
        v.require(request.user_id, "user_id")
        v.require(request.reason.strip(), "reason")
        v.raise_if_any()
        user = await self._users.suspend_user(current_principal(), request.user_id, request.reason.strip())
        return pb.SuspendUserResponse(user=user_pb(user))

    async def ReinstateUser(self, request: pb.ReinstateUserRequest, context: Context) -> pb.ReinstateUserResponse:
        """Lift a suspension (idempotent)."""
        v = Violations()
        v.require(request.user_id, "user_id")
        v.raise_if_any()
        user = await self._users.reinstate_user(current_principal(), request.user_id, request.reason.strip())
        return pb.ReinstateUserResponse(user=user_pb(user))
