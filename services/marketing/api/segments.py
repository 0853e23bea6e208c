"""SegmentService servicer: proto in, `Segments` use case, proto out.

The scopes are the methods' rules in the proto (enforced by the shared middleware); on top
of them every method refuses a token whose subject is a user — segments speak about many
users, and ``marketing.read`` is user-delegable.
"""

from __future__ import annotations

from typing import Any

import grpc
from furima.marketing.v1 import segment_service_pb2 as pb
from furima.marketing.v1 import segment_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import FieldViolation, InvalidArgument, PermissionDenied
from libs.pb import decode_page_token, encode_page_token, page_size, timestamp
from services.marketing.api._segment_messages import draft_from_pb, segment_pb
from services.marketing.service.segments import Segments

Context = grpc.aio.ServicerContext[Any, Any]

SEGMENT_SERVICE = pb.DESCRIPTOR.services_by_name["SegmentService"]
register_segments = pb_grpc.add_SegmentServiceServicer_to_server

MAX_SEGMENT_PAGE = 200
DEFAULT_MEMBER_PAGE = 100
MAX_MEMBER_PAGE = 1000


class SegmentServicer(pb_grpc.SegmentServiceServicer):
    """Marketers and services define segments and ask who is in them."""

    def __init__(self, segments: Segments) -> None:
        self._segments = segments

    async def CreateSegment(self, request: pb.CreateSegmentRequest, context: Context) -> pb.CreateSegmentResponse:
        """Create under the caller's id; the same definition again returns the segment."""
        actor = _marketer()
        segment = await self._segments.create(draft_from_pb(request.segment), actor)
        return pb.CreateSegmentResponse(segment=segment_pb(segment))

    async def UpdateSegment(self, request: pb.UpdateSegmentRequest, context: Context) -> pb.UpdateSegmentResponse:
        """Replace the definition at ``expected_version``."""
        actor = _marketer()
        segment = await self._segments.update(draft_from_pb(request.segment), request.expected_version, actor)
        return pb.UpdateSegmentResponse(segment=segment_pb(segment))

    async def GetSegment(self, request: pb.GetSegmentRequest, context: Context) -> pb.GetSegmentResponse:
        """One segment."""
        _marketer()
        return pb.GetSegmentResponse(segment=segment_pb(await self._segments.get(request.segment_id)))

    async def ListSegments(self, request: pb.ListSegmentsRequest, context: Context) -> pb.ListSegmentsResponse:
        """Segments in id order, a page at a time."""
        _marketer()
        limit = page_size(request.page_size, maximum=MAX_SEGMENT_PAGE)
        found = await self._segments.list_segments(limit, _after(request.page_token, ()))
        token = "" if found.next_after is None else encode_page_token([found.next_after])
        return pb.ListSegmentsResponse(segments=[segment_pb(s) for s in found.segments], next_page_token=token)

    async def PreviewSegment(self, request: pb.PreviewSegmentRequest, context: Context) -> pb.PreviewSegmentResponse:
        """Validate an unsaved definition and estimate whom it selects."""
        _marketer()
        preview = await self._segments.preview(draft_from_pb(request.segment), request.sample_size)
        return pb.PreviewSegmentResponse(
            canonical_expression=preview.canonical_expression,
            users_evaluated=preview.users_evaluated,
            users_matched=preview.users_matched,
            estimated_size=preview.estimated_size,
            exact=preview.exact,
            sample_user_ids=preview.sample_user_ids,
            evaluated_at=timestamp(preview.evaluated_at),
        )

    async def CheckMembership(self, request: pb.CheckMembershipRequest, context: Context) -> pb.CheckMembershipResponse:
        """Whether one user is in the segment now (their current facts)."""
        _marketer()
        membership = await self._segments.check_membership(request.segment_id, request.user_id)
        return pb.CheckMembershipResponse(
            member=membership.member,
            segment_version=membership.segment_version,
            evaluated_at=timestamp(membership.evaluated_at),
        )

    async def ListSegmentMembers(
        self, request: pb.ListSegmentMembersRequest, context: Context
    ) -> pb.ListSegmentMembersResponse:
        """Members in user id order, from the materialized membership."""
        _marketer()
        limit = page_size(request.page_size or DEFAULT_MEMBER_PAGE, maximum=MAX_MEMBER_PAGE)
        after = _after(request.page_token, (request.segment_id,))
        page = await self._segments.list_members(request.segment_id, limit, after)
        token = "" if page.next_after is None else encode_page_token([request.segment_id, page.next_after])
        return pb.ListSegmentMembersResponse(
            user_ids=page.user_ids,
            next_page_token=token,
            segment_version=page.segment_version,
            computed_at=timestamp(page.computed_at),
        )

    async def CountSegmentMembers(
        self, request: pb.CountSegmentMembersRequest, context: Context
    ) -> pb.CountSegmentMembersResponse:
        """The size of the materialized membership."""
        _marketer()
        count = await self._segments.count_members(request.segment_id)
        return pb.CountSegmentMembersResponse(
            count=count.count, segment_version=count.segment_version, computed_at=timestamp(count.computed_at)
        )


def _marketer() -> str:
    """Who is calling, as recorded on a definition; a user's token is refused."""
    caller = current_principal()
    if caller.is_user:
        raise PermissionDenied("segments are not available to user tokens", reason="USER_TOKEN_REFUSED")
    return f"client:{caller.client_id}"


def _after(page_token: str, scope: tuple[str, ...]) -> str:
    """Where a page continues ("" for the first page). A token carries what it pages
    (``scope``: the segment of a member list) before the last id, and is refused
    elsewhere.
    """
    cursor = decode_page_token(page_token)
    if cursor is None:
        return ""
    if len(cursor) != len(scope) + 1 or tuple(cursor[:-1]) != scope or not isinstance(cursor[-1], str):
        raise InvalidArgument("page_token is not valid", [FieldViolation("page_token", "not a token for this list")])
    return cursor[-1]
