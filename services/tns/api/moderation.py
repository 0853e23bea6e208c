"""ModerationService servicer."""

from __future__ import annotations

from furima.tns.v1 import moderation_service_pb2 as pb
from furima.tns.v1 import moderation_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import PermissionDenied
from services.tns.api._convert import content_from_pb, content_kind, decision_pb
from services.tns.service._events import STATUS
from services.tns.service.cases import CaseDesk
from services.tns.service.moderation import Moderator

MODERATION_SERVICE = pb.DESCRIPTOR.services_by_name["ModerationService"]
register_moderation = pb_grpc.add_ModerationServiceServicer_to_server


class ModerationServicer(pb_grpc.ModerationServiceServicer):
    """Moderation on the publishing path, and user reports."""

    def __init__(self, moderator: Moderator, desk: CaseDesk) -> None:
        self._moderator = moderator
        self._desk = desk

    async def ModerateContent(self, request: pb.ModerateContentRequest, context: object) -> pb.ModerateContentResponse:
        """Decide on a listing, comment or message."""
        decision = await self._moderator.moderate(content_from_pb(request.content), current_principal().client_id)
        return pb.ModerateContentResponse(decision=decision_pb(decision))

    async def ReportContent(self, request: pb.ReportContentRequest, context: object) -> pb.ReportContentResponse:
        """A signed-in user reports content."""
        caller = current_principal()
        if not caller.is_user:
            raise PermissionDenied("reports come from users", reason="USER_TOKEN_REQUIRED")
        kind = content_kind(request.kind, "kind")
        case = await self._desk.report(caller.subject, kind, request.content_id, request.policy, request.note)
        return pb.ReportContentResponse(case_id=case.case_id)

    async def GetContent(self, request: pb.GetContentRequest, context: object) -> pb.GetContentResponse:
        """The content's status and latest decision."""
        stored, decision = await self._moderator.content(content_kind(request.kind, "kind"), request.content_id)
        return pb.GetContentResponse(status=STATUS[stored.status], latest_decision=decision_pb(decision))
