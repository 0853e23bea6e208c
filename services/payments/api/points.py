"""PointsService servicer: idempotent grants."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import grpc
from furima.payments.v1 import points_service_pb2 as pb
from furima.payments.v1 import points_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.pb import timestamp
from services.payments.api._convert import money
from services.payments.domain.points import GrantRequest, PointsGrant
from services.payments.service.points import PointsGranter

Context = grpc.aio.ServicerContext[Any, Any]

POINTS_SERVICE = pb.DESCRIPTOR.services_by_name["PointsService"]
register_points = pb_grpc.add_PointsServiceServicer_to_server


class PointsServicer(pb_grpc.PointsServiceServicer):
    """Campaign grants (called by marketing)."""

    def __init__(self, granter: PointsGranter) -> None:
        self._granter = granter

    async def GrantPoints(self, request: pb.GrantPointsRequest, context: Context) -> pb.GrantPointsResponse:
        """Grant points; keys are scoped to the calling client."""
        grant = await self._granter.grant(current_principal().client_id, grant_request(request))
        return pb.GrantPointsResponse(grant=grant_pb(grant))


def grant_request(request: pb.GrantPointsRequest) -> GrantRequest:
    """The domain request (an unset expiry becomes None, refused by validation)."""
    return GrantRequest(
        idempotency_key=request.idempotency_key,
        user_id=request.user_id,
        amount=request.amount.amount,
        currency=request.amount.currency,
        campaign_id=request.campaign_id,
        expires_at=request.expires_at.ToDatetime(tzinfo=UTC) if request.HasField("expires_at") else None,
        description=request.description,
    )


def grant_pb(grant: PointsGrant) -> pb.PointsGrant:
    """The PointsGrant message."""
    return pb.PointsGrant(
        grant_id=grant.grant_id,
        transfer_id=grant.transfer_id,
        user_id=grant.user_id,
        amount=money(grant.amount, grant.currency),
        campaign_id=grant.campaign_id,
        expires_at=timestamp(grant.expires_at),
        granted_at=timestamp(grant.granted_at),
    )
