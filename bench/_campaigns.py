"""The marketing bench's segments and 20 running campaigns, created through the public RPCs.

They are varied on purpose, so that every event costs what it would in production: 8
segments (windowed counts and sums, an attribute, a recency test, references to other
segments) are re-evaluated for the event's user on every event, and each event type
triggers several campaigns, with property filters, first-only triggers, points or only
a message, per-user and frequency caps, budgets small enough to run out, and one campaign
run as an experiment. Every points campaign has a per-user cap of 1, so after a run each
user holds each campaign's points at most once (what `bench._marketing` checks).
"""

from __future__ import annotations

from typing import NamedTuple

import grpc
from furima.marketing.v1 import campaign_service_pb2 as cmp_pb
from furima.marketing.v1 import campaign_service_pb2_grpc as cmp_grpc
from furima.marketing.v1 import segment_service_pb2 as seg_pb
from furima.marketing.v1 import segment_service_pb2_grpc as seg_grpc
from furima.types.v1 import money_pb2
from google.protobuf.duration_pb2 import Duration

from bench._h2load import BenchError

CURRENCY = "JPY"
FIRST_LISTING = "first_listing"
"""The campaign whose grants the latency scenario times: 300 points for a first listing."""

SEGMENTS = {
    "everyone": "true",
    "listers": "count(item_listed, 30d) >= 1",
    "active": "count(app_opened, 7d) >= 3",
    "big_sellers": "sum(item_listed.price, 30d) >= 20000",
    "engaged_listers": 'in_segment("listers") and in_segment("active")',
    "kanto": 'region == "kanto"',
    "kansai": 'region == "kansai"',
    "recent_openers": "last(app_opened) within 1d",
}


class CampaignSpec(NamedTuple):
    """One bench campaign, compactly."""

    key: str
    event_type: str
    segment: str
    property_filter: str = ""
    first_only: bool = False
    points: int = 0
    """Points per grant (0: no incentive)."""
    budget: int = 0
    channel: cmp_pb.Channel = cmp_pb.CHANNEL_UNSPECIFIED
    """The channel of its message (unspecified: no message)."""
    per_user_cap: int = 1
    push_per_day: int = 0
    """A push frequency cap (0: none)."""
    experiment: bool = False
    """Run as an experiment: half the users in a holdout control arm."""


_PUSH, _EMAIL, _IN_APP = cmp_pb.CHANNEL_PUSH, cmp_pb.CHANNEL_EMAIL, cmp_pb.CHANNEL_IN_APP
_LISTED, _OPENED = "item_listed", "app_opened"
_M = 1_000_000

CAMPAIGNS = (
    CampaignSpec(FIRST_LISTING, _LISTED, "everyone", first_only=True, points=300, budget=100 * _M, channel=_PUSH),
    CampaignSpec("first_books", _LISTED, "everyone", 'category == "books"', True, points=100, budget=20 * _M),
    CampaignSpec("first_sports", _LISTED, "listers", 'category == "sports"', True, 80, 20 * _M, _IN_APP),
    CampaignSpec("pricey_listing", _LISTED, "everyone", "price >= 10000", channel=_IN_APP, per_user_cap=3),
    CampaignSpec("big_sellers", _LISTED, "big_sellers", points=500, budget=150_000, channel=_EMAIL),
    CampaignSpec("fashion", _LISTED, "everyone", 'category in ["fashion", "shoes"]', channel=_PUSH, per_user_cap=2,
                 push_per_day=2),
    CampaignSpec("engaged_listers", _LISTED, "engaged_listers", points=200, budget=60_000),
    CampaignSpec("kanto_listing", _LISTED, "kanto", channel=_PUSH, per_user_cap=2, push_per_day=3),
    CampaignSpec("kansai_books", _LISTED, "kansai", 'category == "books"', channel=_PUSH, per_user_cap=2),
    CampaignSpec("electronics", _LISTED, "everyone", 'category == "electronics" and price >= 5000', points=150,
                 budget=45_000),
    CampaignSpec("recent_openers", _LISTED, "recent_openers", channel=_EMAIL, per_user_cap=3),
    CampaignSpec("bargains", _LISTED, "everyone", "price < 1000", channel=_IN_APP, per_user_cap=5),
    CampaignSpec("toys_budget", _LISTED, "everyone", 'category == "toys"', points=100, budget=20_000),
    CampaignSpec("welcome", _OPENED, "everyone", first_only=True, channel=_IN_APP),
    CampaignSpec("active_nudge", _OPENED, "active", channel=_PUSH, push_per_day=3),
    CampaignSpec("ios_first", _OPENED, "everyone", 'platform == "ios"', first_only=True, channel=_EMAIL),
    CampaignSpec("lister_return", _OPENED, "listers", channel=_IN_APP, per_user_cap=2),
    CampaignSpec("opener_experiment", _OPENED, "listers", points=30, budget=9_000, channel=_PUSH, experiment=True),
    CampaignSpec("profile_thanks", "profile_updated", "everyone", first_only=True, channel=_IN_APP),
    CampaignSpec("points_thanks", "points_granted", "everyone", first_only=True, channel=_IN_APP),
)  # fmt: skip


def _money(amount: int) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency=CURRENCY)


def campaign_message(spec: CampaignSpec) -> cmp_pb.Campaign:
    """The `Campaign` of ``spec`` as CreateCampaign takes it."""
    campaign = cmp_pb.Campaign(
        name=f"bench {spec.key}",
        segment_id=spec.segment,
        trigger=cmp_pb.Trigger(
            event=cmp_pb.EventTrigger(
                event_type=spec.event_type, property_filter=spec.property_filter, first_only=spec.first_only
            )
        ),
        per_user_cap=spec.per_user_cap,
    )
    if spec.points:
        campaign.incentive.points.CopyFrom(cmp_pb.PointsIncentive(amount=_money(spec.points), expiry_days=90))
        campaign.budget.CopyFrom(_money(spec.budget))
    if spec.channel:
        body = "{{incentive.amount}} points are yours" if spec.points else f"{spec.key}: something for you"
        campaign.communication.CopyFrom(
            cmp_pb.Communication(channel=spec.channel, title=f"bench {spec.key}", body=body, link="furima://sell")
        )
    if spec.push_per_day:
        campaign.frequency_caps.append(cmp_pb.FrequencyCap(channel=_PUSH, max_per_day=spec.push_per_day))
    if spec.experiment:
        campaign.experiment.CopyFrom(
            cmp_pb.CampaignExperiment(
                variants=[
                    cmp_pb.CampaignVariant(name="control", weight=1, holdout=True),
                    cmp_pb.CampaignVariant(name="treat", weight=1),
                ],
                control="control",
                conversion_event_type="item_listed",
                conversion_window=Duration(seconds=7 * 86_400),
            )
        )
    return campaign


async def create_campaigns(channel: grpc.aio.Channel, token: str) -> dict[str, str]:
    """Create the segments and start every campaign; returns campaign key → campaign id."""
    metadata = (("authorization", f"Bearer {token}"),)
    segments = seg_grpc.SegmentServiceStub(channel)
    for segment_id, expression in SEGMENTS.items():
        segment = seg_pb.Segment(segment_id=segment_id, display_name=segment_id, expression=expression)
        await segments.CreateSegment(seg_pb.CreateSegmentRequest(segment=segment), metadata=metadata, timeout=10)
    stub = cmp_grpc.CampaignServiceStub(channel)
    ids: dict[str, str] = {}
    for spec in CAMPAIGNS:
        request = cmp_pb.CreateCampaignRequest(idempotency_key=f"bench-{spec.key}", campaign=campaign_message(spec))
        created = await stub.CreateCampaign(request, metadata=metadata, timeout=10)
        campaign_id = created.campaign.campaign_id
        started = await stub.StartCampaign(
            cmp_pb.StartCampaignRequest(campaign_id=campaign_id), metadata=metadata, timeout=10
        )
        if started.campaign.status != cmp_pb.CAMPAIGN_STATUS_RUNNING:
            raise BenchError(
                f"campaign {spec.key} did not start: {cmp_pb.CampaignStatus.Name(started.campaign.status)}"
            )
        ids[spec.key] = campaign_id
    return ids
