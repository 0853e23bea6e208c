"""CaseService servicer."""

from __future__ import annotations

from furima.tns.v1 import case_service_pb2 as pb
from furima.tns.v1 import case_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import FieldViolation, InvalidArgument, PermissionDenied, Violations
from libs.pb import decode_page_token, encode_page_token, page_size
from services.tns.api._convert import CASE_STATUS_FROM_PB, RESOLUTION_FROM_PB, audit_pb, case_pb, content_kind
from services.tns.domain.cases import CaseStatus
from services.tns.service.audit import AuditTrail
from services.tns.service.cases import CaseDesk

CASE_SERVICE = pb.DESCRIPTOR.services_by_name["CaseService"]
register_cases = pb_grpc.add_CaseServiceServicer_to_server
MAX_PAGE = 200


def _cursor(token: str) -> tuple[int, str] | None:
    cursor = decode_page_token(token)
    if cursor is None:
        return None
    if len(cursor) != 2 or not isinstance(cursor[0], int) or not isinstance(cursor[1], str):
        raise InvalidArgument("page_token is not valid", [FieldViolation("page_token", "not a token this API issued")])
    return cursor[0], cursor[1]


class CaseServicer(pb_grpc.CaseServiceServicer):
    """Review cases for agents; appeals for users; the audit log."""

    def __init__(self, desk: CaseDesk, trail: AuditTrail) -> None:
        self._desk = desk
        self._trail = trail

    async def ListCases(self, request: pb.ListCasesRequest, context: object) -> pb.ListCasesResponse:
        """Cases by priority."""
        status = CASE_STATUS_FROM_PB.get(request.status, CaseStatus.OPEN)  # type: ignore[call-overload]
        limit = page_size(request.page_size, maximum=MAX_PAGE)
        cases = await self._desk.list(status, list(request.policies), _cursor(request.page_token), limit + 1)
        last = cases[limit - 1] if len(cases) > limit else None
        token = encode_page_token([last.priority, last.case_id]) if last else ""
        return pb.ListCasesResponse(cases=[case_pb(c) for c in cases[:limit]], next_page_token=token)

    async def GetCase(self, request: pb.GetCaseRequest, context: object) -> pb.GetCaseResponse:
        """One case."""
        problems = Violations()
        problems.require(request.case_id, "case_id")
        problems.raise_if_any()
        return pb.GetCaseResponse(case=case_pb(await self._desk.get(request.case_id)))

    async def ClaimCase(self, request: pb.ClaimCaseRequest, context: object) -> pb.ClaimCaseResponse:
        """Lease a case to the calling agent."""
        case = await self._desk.claim(current_principal().subject, request.case_id, list(request.policies))
        return pb.ClaimCaseResponse(case=case_pb(case))

    async def ResolveCase(self, request: pb.ResolveCaseRequest, context: object) -> pb.ResolveCaseResponse:
        """Confirm or overturn under the agent's lease."""
        resolution = RESOLUTION_FROM_PB.get(request.resolution)  # type: ignore[call-overload]
        if resolution is None:
            raise InvalidArgument(
                "the resolution is missing", [FieldViolation("resolution", "must be CONFIRM or OVERTURN")]
            )
        case = await self._desk.resolve(current_principal().subject, request.case_id, resolution, request.note)
        return pb.ResolveCaseResponse(case=case_pb(case))

    async def FileAppeal(self, request: pb.FileAppealRequest, context: object) -> pb.FileAppealResponse:
        """The author appeals an enforcement on their own content."""
        caller = current_principal()
        if not caller.is_user:
            raise PermissionDenied("appeals come from the content's author", reason="USER_TOKEN_REQUIRED")
        kind = content_kind(request.kind, "kind")
        case = await self._desk.appeal(caller.subject, kind, request.content_id, request.statement)
        return pb.FileAppealResponse(case=case_pb(case))

    async def ListAuditEntries(
        self, request: pb.ListAuditEntriesRequest, context: object
    ) -> pb.ListAuditEntriesResponse:
        """The audit log, newest first."""
        limit = page_size(request.page_size, maximum=MAX_PAGE)
        cursor = decode_page_token(request.page_token)
        before = cursor[0] if cursor and isinstance(cursor[0], int) else None
        entries = await self._trail.page(request.subject, before, limit + 1)
        token = encode_page_token([entries[limit - 1][0]]) if len(entries) > limit else ""
        return pb.ListAuditEntriesResponse(entries=[audit_pb(e) for _, e in entries[:limit]], next_page_token=token)
