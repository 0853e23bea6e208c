"""CampaignService servicer: the campaign messages to and from the domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from furima.marketing.v1 import campaign_service_pb2 as pb
from furima.marketing.v1 import campaign_service_pb2_grpc as pb_grpc
from furima.types.v1 import money_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from libs.auth import current_principal
from libs.errors import FieldViolation, InvalidArgument, PermissionDenied
from libs.pb import decode_page_token, next_page, page_size, timestamp
from services.marketing.domain.campaigns import (
    CampaignDefinition,
    CampaignExperiment,
    CampaignStatus,
    CampaignVariant,
    Channel,
    Communication,
    CouponIncentive,
    EventTrigger,
    Incentive,
    PointsIncentive,
    ScheduleTrigger,
    SkipReason,
    Transition,
)
from services.marketing.service.campaigns import Campaigns, CampaignStats
from services.marketing.store.campaigns import StoredCampaign

Context = grpc.aio.ServicerContext[Any, Any]

CAMPAIGN_SERVICE = pb.DESCRIPTOR.services_by_name["CampaignService"]
register_campaigns = pb_grpc.add_CampaignServiceServicer_to_server

_STATUS = {
    CampaignStatus.DRAFT: pb.CAMPAIGN_STATUS_DRAFT,
    CampaignStatus.SCHEDULED: pb.CAMPAIGN_STATUS_SCHEDULED,
    CampaignStatus.RUNNING: pb.CAMPAIGN_STATUS_RUNNING,
    CampaignStatus.PAUSED: pb.CAMPAIGN_STATUS_PAUSED,
    CampaignStatus.ENDED: pb.CAMPAIGN_STATUS_ENDED,
}
_STATUS_BACK = {v: k for k, v in _STATUS.items()}
_CHANNEL = {Channel.PUSH: pb.CHANNEL_PUSH, Channel.EMAIL: pb.CHANNEL_EMAIL, Channel.IN_APP: pb.CHANNEL_IN_APP}
_CHANNEL_BACK = {v: k for k, v in _CHANNEL.items()}
_SKIP = {
    SkipReason.NOT_IN_SEGMENT: pb.SKIP_REASON_NOT_IN_SEGMENT,
    SkipReason.FILTER_MISMATCH: pb.SKIP_REASON_FILTER_MISMATCH,
    SkipReason.NOT_FIRST: pb.SKIP_REASON_NOT_FIRST,
    SkipReason.GLOBAL_HOLDOUT: pb.SKIP_REASON_GLOBAL_HOLDOUT,
    SkipReason.USER_RESTRICTED: pb.SKIP_REASON_USER_RESTRICTED,
    SkipReason.CONTROL_VARIANT: pb.SKIP_REASON_CONTROL_VARIANT,
    SkipReason.PER_USER_CAP: pb.SKIP_REASON_PER_USER_CAP,
    SkipReason.FREQUENCY_CAP: pb.SKIP_REASON_FREQUENCY_CAP,
    SkipReason.BUDGET_EXHAUSTED: pb.SKIP_REASON_BUDGET_EXHAUSTED,
    SkipReason.DELIVERY_FAILED: pb.SKIP_REASON_DELIVERY_FAILED,
}


def _marketer() -> str:
    """Who is calling; users are refused on every campaign method."""
    caller = current_principal()
    if caller.is_user:
        raise PermissionDenied("campaigns are for marketers and services", reason="USER_TOKEN_REFUSED")
    return f"client:{caller.client_id}"


class CampaignServicer(pb_grpc.CampaignServiceServicer):
    """Campaign management for marketers."""

    def __init__(self, campaigns: Campaigns) -> None:
        self._campaigns = campaigns

    async def CreateCampaign(self, request: pb.CreateCampaignRequest, context: Context) -> pb.CreateCampaignResponse:
        """A new DRAFT campaign (idempotent per key)."""
        caller = _marketer()
        created = await self._campaigns.create(caller, request.idempotency_key, definition(request.campaign))
        return pb.CreateCampaignResponse(campaign=campaign_pb(created))

    async def UpdateCampaign(self, request: pb.UpdateCampaignRequest, context: Context) -> pb.UpdateCampaignResponse:
        """Replace an editable campaign's definition."""
        _marketer()
        updated = await self._campaigns.update(
            request.campaign.campaign_id, definition(request.campaign), request.expected_version
        )
        return pb.UpdateCampaignResponse(campaign=campaign_pb(updated))

    async def GetCampaign(self, request: pb.GetCampaignRequest, context: Context) -> pb.GetCampaignResponse:
        """One campaign."""
        _marketer()
        return pb.GetCampaignResponse(campaign=campaign_pb(await self._campaigns.get(request.campaign_id)))

    async def ListCampaigns(self, request: pb.ListCampaignsRequest, context: Context) -> pb.ListCampaignsResponse:
        """Campaigns in id order, paged."""
        _marketer()
        size = page_size(request.page_size, maximum=200)
        cursor = decode_page_token(request.page_token) if request.page_token else [""]
        if cursor is None or len(cursor) != 1 or not isinstance(cursor[0], str):
            raise InvalidArgument("bad page token", [FieldViolation("page_token", "is not a token of this list")])
        statuses = [_STATUS_BACK[s] for s in request.statuses if s in _STATUS_BACK]
        found = await self._campaigns.list(statuses, cursor[0], size + 1)
        page, token = next_page(found, size, lambda c: c.campaign_id)
        return pb.ListCampaignsResponse(campaigns=[campaign_pb(c) for c in page], next_page_token=token)

    async def ScheduleCampaign(
        self, request: pb.ScheduleCampaignRequest, context: Context
    ) -> pb.ScheduleCampaignResponse:
        """DRAFT → SCHEDULED."""
        caller = _marketer()
        start = _time(request.start_at) if request.HasField("start_at") else None
        end = _time(request.end_at) if request.HasField("end_at") else None
        moved = await self._campaigns.transition(
            request.campaign_id, Transition.SCHEDULE, caller, start_at=start, end_at=end
        )
        return pb.ScheduleCampaignResponse(campaign=campaign_pb(moved))

    async def StartCampaign(self, request: pb.StartCampaignRequest, context: Context) -> pb.StartCampaignResponse:
        """Run now."""
        moved = await self._campaigns.transition(request.campaign_id, Transition.START, _marketer())
        return pb.StartCampaignResponse(campaign=campaign_pb(moved))

    async def PauseCampaign(self, request: pb.PauseCampaignRequest, context: Context) -> pb.PauseCampaignResponse:
        """Stop firing for now."""
        moved = await self._campaigns.transition(request.campaign_id, Transition.PAUSE, _marketer(), request.reason)
        return pb.PauseCampaignResponse(campaign=campaign_pb(moved))

    async def ResumeCampaign(self, request: pb.ResumeCampaignRequest, context: Context) -> pb.ResumeCampaignResponse:
        """Fire again."""
        moved = await self._campaigns.transition(request.campaign_id, Transition.RESUME, _marketer())
        return pb.ResumeCampaignResponse(campaign=campaign_pb(moved))

    async def EndCampaign(self, request: pb.EndCampaignRequest, context: Context) -> pb.EndCampaignResponse:
        """Final."""
        moved = await self._campaigns.transition(
            request.campaign_id, Transition.END, _marketer(), request.reason or "ENDED_BY_USER"
        )
        return pb.EndCampaignResponse(campaign=campaign_pb(moved))

    async def GetCampaignStats(
        self, request: pb.GetCampaignStatsRequest, context: Context
    ) -> pb.GetCampaignStatsResponse:
        """Counters per campaign and variant."""
        _marketer()
        return stats_pb(await self._campaigns.stats(request.campaign_id), datetime.now(UTC))


# -- requests → domain -----------------------------------------------------------------------


def _time(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def _incentive(message: pb.Incentive, path: str) -> Incentive | None:
    kind = message.WhichOneof("kind")
    if kind == "points":
        p = message.points
        return PointsIncentive(p.amount.amount, p.amount.currency, p.expiry_days)
    if kind == "coupon":
        c = message.coupon
        return CouponIncentive(c.code, c.face_value.amount, c.face_value.currency, c.expiry_days)
    return None


def _communication(message: pb.Communication, path: str) -> Communication:
    if message.channel not in _CHANNEL_BACK:
        raise InvalidArgument("bad channel", [FieldViolation(f"{path}.channel", "is required: PUSH, EMAIL or IN_APP")])
    return Communication(_CHANNEL_BACK[message.channel], message.title, message.body, message.link)


def definition(message: pb.Campaign) -> CampaignDefinition:
    """The domain definition of a Campaign message (output-only fields ignored)."""
    trigger: EventTrigger | ScheduleTrigger | None = None
    kind = message.trigger.WhichOneof("kind")
    if kind == "event":
        e = message.trigger.event
        trigger = EventTrigger(e.event_type, e.property_filter, e.first_only)
    elif kind == "schedule":
        s = message.trigger.schedule
        repeat = s.repeat_every.ToTimedelta() if s.HasField("repeat_every") else None
        trigger = ScheduleTrigger(_time(s.run_at), repeat or None)
    caps: dict[Channel, int] = {}
    for i, cap in enumerate(message.frequency_caps):
        if cap.channel not in _CHANNEL_BACK or _CHANNEL_BACK[cap.channel] in caps:
            path = f"campaign.frequency_caps[{i}].channel"
            raise InvalidArgument(
                "bad frequency cap", [FieldViolation(path, "one cap per channel: PUSH, EMAIL, IN_APP")]
            )
        caps[_CHANNEL_BACK[cap.channel]] = cap.max_per_day
    experiment = None
    if message.HasField("experiment"):
        x = message.experiment
        experiment = CampaignExperiment(
            tuple(
                CampaignVariant(
                    v.name,
                    v.weight,
                    _incentive(v.incentive, f"campaign.experiment.variants[{i}].incentive")
                    if v.HasField("incentive")
                    else None,
                    _communication(v.communication, f"campaign.experiment.variants[{i}].communication")
                    if v.HasField("communication")
                    else None,
                    v.holdout,
                )
                for i, v in enumerate(x.variants)
            ),
            x.control,
            x.conversion_event_type,
            x.conversion_window.ToTimedelta() if x.HasField("conversion_window") else timedelta(0),
        )
    return CampaignDefinition(
        name=message.name,
        description=message.description,
        segment_id=message.segment_id,
        trigger=trigger,
        incentive=_incentive(message.incentive, "campaign.incentive") if message.HasField("incentive") else None,
        communication=(
            _communication(message.communication, "campaign.communication")
            if message.HasField("communication")
            else None
        ),
        budget=message.budget.amount,
        budget_currency=message.budget.currency or "JPY",
        per_user_cap=message.per_user_cap or 1,
        frequency_caps=caps,
        experiment=experiment,
        end_at=_time(message.end_at) if message.HasField("end_at") else None,
    )


# -- domain → responses -----------------------------------------------------------------------


def _money(amount: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency=currency)


def _incentive_pb(incentive: Incentive | None) -> pb.Incentive | None:
    if isinstance(incentive, PointsIncentive):
        points = pb.PointsIncentive(
            amount=_money(incentive.amount, incentive.currency), expiry_days=incentive.expiry_days
        )
        return pb.Incentive(points=points)
    if isinstance(incentive, CouponIncentive):
        coupon = pb.CouponIncentive(
            code=incentive.code,
            face_value=_money(incentive.face_value, incentive.currency),
            expiry_days=incentive.expiry_days,
        )
        return pb.Incentive(coupon=coupon)
    return None


def _communication_pb(message: Communication | None) -> pb.Communication | None:
    if message is None:
        return None
    return pb.Communication(
        channel=_CHANNEL[message.channel], title=message.title, body=message.body, link=message.link
    )


def campaign_pb(stored: StoredCampaign) -> pb.Campaign:
    """The Campaign message."""
    d = stored.definition
    message = pb.Campaign(
        campaign_id=stored.campaign_id,
        name=d.name,
        description=d.description,
        status=_STATUS[stored.status],
        segment_id=d.segment_id,
        incentive=_incentive_pb(d.incentive),
        communication=_communication_pb(d.communication),
        budget=_money(d.budget, d.budget_currency),
        spent=_money(stored.spent, d.budget_currency),
        per_user_cap=d.per_user_cap,
        frequency_caps=[pb.FrequencyCap(channel=_CHANNEL[c], max_per_day=n) for c, n in d.frequency_caps.items()],
        experiment_id=stored.campaign_id if d.experiment else "",
        end_reason=stored.end_reason,
        version=stored.version,
        created_at=timestamp(stored.created_at),
        updated_at=timestamp(stored.updated_at),
    )
    if isinstance(d.trigger, EventTrigger):
        t = d.trigger
        message.trigger.event.CopyFrom(
            pb.EventTrigger(event_type=t.event_type, property_filter=t.property_filter, first_only=t.first_only)
        )
    elif isinstance(d.trigger, ScheduleTrigger):
        message.trigger.schedule.run_at.CopyFrom(timestamp(d.trigger.run_at))
        if d.trigger.repeat_every:
            message.trigger.schedule.repeat_every.FromTimedelta(d.trigger.repeat_every)
    if d.experiment is not None:
        x = d.experiment
        message.experiment.control = x.control
        message.experiment.conversion_event_type = x.conversion_event_type
        message.experiment.conversion_window.FromTimedelta(x.conversion_window)
        for v in x.variants:
            message.experiment.variants.append(
                pb.CampaignVariant(
                    name=v.name,
                    weight=v.weight,
                    incentive=_incentive_pb(v.incentive),
                    communication=_communication_pb(v.communication),
                    holdout=v.holdout,
                )
            )
    if stored.start_at is not None:
        message.start_at.CopyFrom(timestamp(stored.start_at))
    if stored.end_at is not None:
        message.end_at.CopyFrom(timestamp(stored.end_at))
    return message


def _counts_pb(values: dict[str, int], currency: str) -> pb.CampaignCounts:
    channels: dict[str, dict[str, int]] = {}
    skipped: list[pb.SkipCount] = []
    for name, value in values.items():
        if name.startswith("skip:"):
            skipped.append(pb.SkipCount(reason=_SKIP[SkipReason(name.removeprefix("skip:"))], count=value))
        elif name.startswith("messages:"):
            _, channel, outcome = name.split(":")
            channels.setdefault(channel, {})[outcome] = value
    skipped.sort(key=lambda count: count.reason)
    return pb.CampaignCounts(
        firings=values.get("firings", 0),
        users_reached=values.get("users_reached", 0),
        incentives_granted=values.get("incentives", 0),
        granted=_money(values.get("granted", 0), currency),
        messages=[
            pb.ChannelCount(channel=_CHANNEL[Channel(c)], delivered=v.get("delivered", 0), failed=v.get("failed", 0))
            for c, v in sorted(channels.items())
        ],
        skipped=skipped,
    )


def stats_pb(stats: CampaignStats, now: datetime) -> pb.GetCampaignStatsResponse:
    """The GetCampaignStats answer: the campaign as a whole, and per variant."""
    c, d = stats.campaign, stats.campaign.definition
    total: dict[str, int] = {}
    for values in stats.counters.values():
        for name, value in values.items():
            total[name] = total.get(name, 0) + value
    variants = [
        pb.VariantCounts(variant=v.name, counts=_counts_pb(stats.counters.get(v.name, {}), d.budget_currency))
        for v in (d.experiment.variants if d.experiment else ())
    ]
    return pb.GetCampaignStatsResponse(
        campaign_id=c.campaign_id,
        status=_STATUS[c.status],
        total=_counts_pb(total, d.budget_currency),
        budget=_money(d.budget, d.budget_currency),
        remaining_budget=_money(d.budget - c.spent, d.budget_currency),
        variants=variants,
        computed_at=timestamp(now),
    )
