"""EnforcementService servicer."""

from __future__ import annotations

from furima.tns.v1 import enforcement_service_pb2 as pb
from furima.tns.v1 import enforcement_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.clock import Clock
from libs.errors import PermissionDenied, Violations
from libs.pb import decode_page_token, next_page, page_size
from services.tns.api._convert import label_pb, standing_pb
from services.tns.domain import audit as who
from services.tns.service._events import action_pb
from services.tns.service.enforcement import Enforcer

ENFORCEMENT_SERVICE = pb.DESCRIPTOR.services_by_name["EnforcementService"]
register_enforcement = pb_grpc.add_EnforcementServiceServicer_to_server
MAX_ACTIONS_PAGE = 200


class EnforcementServicer(pb_grpc.EnforcementServiceServicer):
    """Standing, actions and labels."""

    def __init__(self, enforcer: Enforcer, clock: Clock) -> None:
        self._enforcer = enforcer
        self._clock = clock

    async def GetUserStanding(self, request: pb.GetUserStandingRequest, context: object) -> pb.GetUserStandingResponse:
        """Anyone's standing for services and agents; one's own for a user."""
        caller = current_principal()
        problems = Violations()
        problems.require(request.user_id, "user_id")
        problems.raise_if_any()
        if not (caller.has_scope("tns.standing.read") or caller.has_scope("tns.review")) and (
            request.user_id != caller.subject
        ):
            raise PermissionDenied("a user may read only their own standing", reason="NOT_OWNER")
        standing = await self._enforcer.standing(request.user_id)
        return pb.GetUserStandingResponse(standing=standing_pb(standing, self._clock.now()))

    async def ListActions(self, request: pb.ListActionsRequest, context: object) -> pb.ListActionsResponse:
        """The user's actions, newest first."""
        problems = Violations()
        problems.require(request.user_id, "user_id")
        problems.raise_if_any()
        limit = page_size(request.page_size, maximum=MAX_ACTIONS_PAGE)
        cursor = decode_page_token(request.page_token)
        before = str(cursor[0]) if cursor else None
        actions = await self._enforcer.actions(request.user_id, before, limit + 1)
        page, token = next_page(actions, limit, lambda a: a.action_id)
        return pb.ListActionsResponse(actions=[action_pb(a) for a in page], next_page_token=token)

    async def AddUserLabel(self, request: pb.AddUserLabelRequest, context: object) -> pb.AddUserLabelResponse:
        """Label a user."""
        expires = (
            request.expires_at.ToDatetime(tzinfo=self._clock.now().tzinfo) if request.HasField("expires_at") else None
        )
        label = await self._enforcer.add_label(
            request.user_id, request.label, request.reason, expires, who.agent(current_principal().subject)
        )
        return pb.AddUserLabelResponse(label=label_pb(label))

    async def RemoveUserLabel(self, request: pb.RemoveUserLabelRequest, context: object) -> pb.RemoveUserLabelResponse:
        """Unlabel a user."""
        await self._enforcer.remove_label(request.user_id, request.label, who.agent(current_principal().subject))
        return pb.RemoveUserLabelResponse()
