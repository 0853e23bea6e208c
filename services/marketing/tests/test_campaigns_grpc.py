"""CampaignService over a real gRPC server (the whole marketing server of `main`): the
lifecycle and stats round trip, field violations for bad campaigns, and who may call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from furima.marketing.v1 import campaign_service_pb2 as pb
from furima.marketing.v1 import campaign_service_pb2_grpc as pb_grpc
from furima.marketing.v1 import segment_service_pb2 as seg_pb
from furima.marketing.v1 import segment_service_pb2_grpc as seg_grpc
from furima.types.v1 import money_pb2

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import FrozenClock
from libs.rpc import ServerConfig, error_details, make_channel
from libs.storage import Database
from libs.testing import Forger, claims
from services.marketing.api.campaigns import CAMPAIGN_SERVICE
from services.marketing.api.segments import SEGMENT_SERVICE
from services.marketing.config import MarketingConfig
from services.marketing.container import assemble
from services.marketing.main import build_server

KEY = Forger(kid="k1")


def bearer(scope: str, subject: str = "svc-crm", *, user: bool = False) -> list[tuple[str, str]]:
    """Call metadata with a token for the marketing audience (a user's when ``user``)."""
    who = "usr_alice" if user else subject
    token = KEY.sign(
        claims(scope=scope, audience=["furima.marketing"], subject=who, client_id="furima-app" if user else subject)
    )
    return [("authorization", f"Bearer {token}")]


class Stubs:
    """Campaign and segment stubs on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.campaigns = pb_grpc.CampaignServiceStub(channel)
        self.segments = seg_grpc.SegmentServiceStub(channel)


@pytest.fixture
async def stubs(db: Database) -> AsyncIterator[Stubs]:
    """Provide the marketing server on a free port with an "everyone" segment."""
    container = assemble(MarketingConfig(database_url=db.url), db, FrozenClock(datetime(2026, 11, 30, tzinfo=UTC)))
    verifier = TokenVerifier("furima-id", "furima.marketing", StaticKeys({"k1": KEY.key.public_key()}), DenyList())
    server = build_server(container, ServerConfig(port=0), verifier)
    await server.start()
    async with make_channel(server.address, services=[CAMPAIGN_SERVICE, SEGMENT_SERVICE]) as channel:
        s = Stubs(channel)
        segment = seg_pb.Segment(segment_id="everyone", display_name="Everyone", expression="true")
        await s.segments.CreateSegment(seg_pb.CreateSegmentRequest(segment=segment), metadata=bearer("marketing.write"))
        yield s
    await server.stop(0)


def campaign(**changes: object) -> pb.Campaign:
    """A well-formed first-listing campaign, with changes."""
    fields: dict[str, object] = {
        "name": "first listing",
        "segment_id": "everyone",
        "trigger": pb.Trigger(event=pb.EventTrigger(event_type="item_listed", first_only=True)),
        "incentive": pb.Incentive(
            points=pb.PointsIncentive(amount=money_pb2.Money(amount=300, currency="JPY"), expiry_days=30)
        ),
        "budget": money_pb2.Money(amount=10_000, currency="JPY"),
        "per_user_cap": 1,
    }
    fields.update(changes)
    return pb.Campaign(**fields)  # type: ignore[arg-type]


async def test_lifecycle_and_stats_round_trip(stubs: Stubs) -> None:
    """Create, replay, start, pause, read stats: every field comes back as sent."""
    write = bearer("marketing.write marketing.read")
    request = pb.CreateCampaignRequest(idempotency_key="k1", campaign=campaign())
    created = (await stubs.campaigns.CreateCampaign(request, metadata=write)).campaign
    assert (created.status, created.version, created.budget.amount) == (pb.CAMPAIGN_STATUS_DRAFT, 1, 10_000)
    assert (created.trigger.event.event_type, created.trigger.event.first_only) == ("item_listed", True)
    again = (await stubs.campaigns.CreateCampaign(request, metadata=write)).campaign
    assert again.campaign_id == created.campaign_id
    cid = created.campaign_id
    started = (await stubs.campaigns.StartCampaign(pb.StartCampaignRequest(campaign_id=cid), metadata=write)).campaign
    assert started.status == pb.CAMPAIGN_STATUS_RUNNING
    paused = await stubs.campaigns.PauseCampaign(
        pb.PauseCampaignRequest(campaign_id=cid, reason="copy"), metadata=write
    )
    assert paused.campaign.status == pb.CAMPAIGN_STATUS_PAUSED
    stats = await stubs.campaigns.GetCampaignStats(pb.GetCampaignStatsRequest(campaign_id=cid), metadata=write)
    assert (stats.remaining_budget.amount, stats.total.firings) == (10_000, 0)
    listed = await stubs.campaigns.ListCampaigns(pb.ListCampaignsRequest(page_size=1), metadata=write)
    assert [c.campaign_id for c in listed.campaigns] == [cid]


async def test_bad_campaigns_name_their_fields(stubs: Stubs) -> None:
    """Every problem at once, by path; an unknown segment too; illegal transitions are FAILED_PRECONDITION."""
    write = bearer("marketing.write")
    bad = campaign(
        name="",
        budget=money_pb2.Money(amount=0, currency="JPY"),
        trigger=pb.Trigger(event=pb.EventTrigger(event_type="item_listed", property_filter="price >")),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.campaigns.CreateCampaign(
            pb.CreateCampaignRequest(idempotency_key="k", campaign=bad), metadata=write
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = error_details(refused.value)["violations"]
    assert isinstance(violations, dict)
    assert set(violations) == {"campaign.name", "campaign.budget.amount", "campaign.trigger.event.property_filter"}
    request = pb.CreateCampaignRequest(idempotency_key="k2", campaign=campaign(segment_id="nobody"))
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stubs.campaigns.CreateCampaign(request, metadata=write)
    assert unknown.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    created = await stubs.campaigns.CreateCampaign(
        pb.CreateCampaignRequest(idempotency_key="k3", campaign=campaign()), metadata=write
    )
    with pytest.raises(grpc.aio.AioRpcError) as illegal:
        await stubs.campaigns.ResumeCampaign(
            pb.ResumeCampaignRequest(campaign_id=created.campaign.campaign_id), metadata=write
        )
    assert illegal.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(illegal.value)["reason"] == "ILLEGAL_TRANSITION"


async def test_who_may_call(stubs: Stubs) -> None:
    """No token, a read-only token writing, and a user's token are refused."""
    request = pb.CreateCampaignRequest(idempotency_key="k", campaign=campaign())
    for metadata, code in (
        ([], grpc.StatusCode.UNAUTHENTICATED),
        (bearer("marketing.read"), grpc.StatusCode.PERMISSION_DENIED),
        (bearer("marketing.write", user=True), grpc.StatusCode.PERMISSION_DENIED),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stubs.campaigns.CreateCampaign(request, metadata=metadata)
        assert refused.value.code() is code
