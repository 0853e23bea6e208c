"""Marketing in the real stack: a user's first listing earns points that land in their
Payments wallet, in one trace across the services; with Payments down the grant waits
and lands exactly once when it is back.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from furima.marketing.v1 import campaign_service_pb2 as cmp_pb
from furima.marketing.v1 import campaign_service_pb2_grpc as cmp_grpc
from furima.marketing.v1 import event_service_pb2 as evt_pb
from furima.marketing.v1 import event_service_pb2_grpc as evt_grpc
from furima.marketing.v1 import segment_service_pb2 as seg_pb
from furima.marketing.v1 import segment_service_pb2_grpc as seg_grpc
from furima.payments.v1 import wallet_service_pb2 as wallet_pb
from furima.payments.v1 import wallet_service_pb2_grpc as wallet_grpc
from furima.types.v1 import money_pb2
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs.pb import timestamp
from libs.rpc import make_channel
from libs.storage import is_postgres
from libs.telemetry import add_span_exporter, setup_telemetry
from libs.testing import postgres_admin_url, temporary_postgres_database
from services.tns.main import TnsService
from tests.helpers import ALICE, bearer, sign_in
from tests.stack import Stack, running_marketing, running_payments

GRANT_POINTS = "furima.payments.v1.PointsService/GrantPoints"
TRACK_EVENT = "furima.marketing.v1.EventService/TrackEvent"


@pytest.fixture
async def fresh_url(database_url: str, tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Make fresh databases on the stack's backend, one per name."""
    if not is_postgres(database_url):

        async def sqlite(name: str) -> str:
            return f"sqlite+aiosqlite:///{tmp_path}/{name}.db"

        yield sqlite
        return
    admin = postgres_admin_url()
    assert admin is not None
    opened: list[object] = []

    async def postgres(name: str) -> str:
        context = temporary_postgres_database(admin)
        opened.append(context)
        return await context.__aenter__()

    yield postgres
    for context in reversed(opened):
        await context.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def _setup_campaign(stack: Stack, target: str) -> str:
    """A segment of everyone and a running first-listing campaign: 300 points, push message."""
    token = await stack.client_token("furima-dev", scope="marketing.write marketing.read")
    async with make_channel(target) as channel:
        segments = seg_grpc.SegmentServiceStub(channel)
        segment = seg_pb.Segment(segment_id="everyone", display_name="Everyone", expression="true")
        await segments.CreateSegment(seg_pb.CreateSegmentRequest(segment=segment), metadata=bearer(token))
        campaigns = cmp_grpc.CampaignServiceStub(channel)
        campaign = cmp_pb.Campaign(
            name="first listing points",
            segment_id="everyone",
            trigger=cmp_pb.Trigger(event=cmp_pb.EventTrigger(event_type="item_listed", first_only=True)),
            incentive=cmp_pb.Incentive(
                points=cmp_pb.PointsIncentive(amount=money_pb2.Money(amount=300, currency="JPY"), expiry_days=30)
            ),
            communication=cmp_pb.Communication(
                channel=cmp_pb.CHANNEL_PUSH, title="Thanks for listing", body="{{incentive.amount}} points for you"
            ),
            budget=money_pb2.Money(amount=100_000, currency="JPY"),
            per_user_cap=1,
        )
        created = await campaigns.CreateCampaign(
            cmp_pb.CreateCampaignRequest(idempotency_key="first-listing", campaign=campaign), metadata=bearer(token)
        )
        started = await campaigns.StartCampaign(
            cmp_pb.StartCampaignRequest(campaign_id=created.campaign.campaign_id), metadata=bearer(token)
        )
        assert started.campaign.status == cmp_pb.CAMPAIGN_STATUS_RUNNING
        return created.campaign.campaign_id


async def _track_listing(stack: Stack, target: str, user_id: str, event_id: str) -> None:
    token = await stack.client_token("svc-marketing", scope="marketing.events.write")
    event = evt_pb.UserEvent(
        event_id=event_id,
        user_id=user_id,
        type="item_listed",
        properties={"category": evt_pb.PropertyValue(string_value="books")},
        occurred_at=timestamp(datetime.now(UTC)),
    )
    async with make_channel(target) as channel:
        await evt_grpc.EventServiceStub(channel).TrackEvent(
            evt_pb.TrackEventRequest(event=event), metadata=bearer(token)
        )


async def _points(stack: Stack, target: str, user_id: str) -> int:
    token = await stack.client_token("svc-payments", scope="payments.read")
    async with make_channel(target) as channel:
        # Waits out a connection still backing off from when nothing listened on the port.
        balance = await wallet_grpc.WalletServiceStub(channel).GetBalance(
            wallet_pb.GetBalanceRequest(user_id=user_id), metadata=bearer(token), wait_for_ready=True, timeout=10
        )
    return sum(b.balance.amount for b in balance.balances if b.bucket == wallet_pb.BUCKET_POINTS)


async def _until(probe: Callable[[], Awaitable[int]], expected: int, within: float = 15.0) -> int:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_a_first_listing_puts_points_in_the_wallet_in_one_trace(
    stack: Stack, tns: TnsService, fresh_url: Callable[[str], Awaitable[str]]
) -> None:
    """TrackEvent(item_listed) → campaign fires → GrantPoints at Payments → 300 points in Alice's
    wallet; the Payments server span belongs to the trace of the TrackEvent call. A second
    listing gives nothing more.
    """
    setup_telemetry("furima-tests")
    exporter = InMemorySpanExporter()
    add_span_exporter(exporter)
    alice = (await sign_in(stack, ALICE)).user.id
    payments_url, marketing_url = await fresh_url("payments"), await fresh_url("marketing")
    async with (
        running_payments(stack, payments_url, tns_target=tns.address) as payments,
        running_marketing(stack, marketing_url, payments_target=payments.address, tns_target=tns.address) as marketing,
    ):
        await _setup_campaign(stack, marketing.address)
        tracer = trace.get_tracer("furima.tests")
        with tracer.start_as_current_span("list-an-item", kind=SpanKind.CLIENT) as root:
            await _track_listing(stack, marketing.address, alice, "evt_listing_1")
        trace_id = root.get_span_context().trace_id
        assert await _until(lambda: _points(stack, payments.address, alice), 300) == 300
        await _track_listing(stack, marketing.address, alice, "evt_listing_2")
        await asyncio.sleep(0.5)
        assert await _points(stack, payments.address, alice) == 300
        sent = marketing.container.sink
        assert [(m[1], m[3]) for m in sent.sent] == [(alice, "300 points for you")]  # type: ignore[attr-defined]
    in_trace = {
        (s.name, s.kind)
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    }
    assert (TRACK_EVENT, SpanKind.SERVER) in in_trace
    assert ("marketing.grant", SpanKind.INTERNAL) in in_trace
    assert (GRANT_POINTS, SpanKind.SERVER) in in_trace


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_payments_down_then_back_grants_exactly_once(
    stack: Stack, fresh_url: Callable[[str], Awaitable[str]]
) -> None:
    """With Payments down the reward waits; when Payments starts, the points land once."""
    alice = (await sign_in(stack, ALICE)).user.id
    port = _free_port()
    async with running_marketing(stack, await fresh_url("marketing"), payments_target=f"127.0.0.1:{port}") as marketing:
        await _setup_campaign(stack, marketing.address)
        await _track_listing(stack, marketing.address, alice, "evt_listing_1")
        await asyncio.sleep(1.0)  # the dispatcher tries and backs off
        async with running_payments(stack, await fresh_url("payments"), port=port) as payments:
            # The dispatcher's retries double (1, 2, 4, 8, 16 s...): the first try after Payments
            # is back can be as far off again as Payments was down, and one more doubling if it
            # meets the channel still in its reconnect backoff (up to 5 s). Allow for a slow
            # start on a loaded machine; the points landing ends the wait at once.
            assert await _until(lambda: _points(stack, payments.address, alice), 300, within=60) == 300
            await asyncio.sleep(1.0)
            assert await _points(stack, payments.address, alice) == 300
            stats = marketing.container.campaigns
            (campaign,) = await stats.list([], "", 10)
            counters = (await stats.stats(campaign.campaign_id)).counters[""]
            assert (counters["incentives"], counters["granted"]) == (1, 300)


async def test_marketing_refuses_users_and_wrong_scopes(
    stack: Stack, fresh_url: Callable[[str], Awaitable[str]]
) -> None:
    """No token → UNAUTHENTICATED; a user's token → PERMISSION_DENIED; events need the events scope."""
    alice = await sign_in(stack, ALICE)
    async with (
        running_marketing(stack, await fresh_url("marketing")) as marketing,
        make_channel(marketing.address) as channel,
    ):
        campaigns = cmp_grpc.CampaignServiceStub(channel)
        events = evt_grpc.EventServiceStub(channel)
        list_request = cmp_pb.ListCampaignsRequest()
        reader = await stack.client_token("furima-dev", scope="marketing.read")
        for call, code in (
            (campaigns.ListCampaigns(list_request), grpc.StatusCode.UNAUTHENTICATED),
            (
                campaigns.ListCampaigns(list_request, metadata=bearer(alice.tokens.access_token)),
                grpc.StatusCode.PERMISSION_DENIED,
            ),
            (
                events.TrackEvent(evt_pb.TrackEventRequest(), metadata=bearer(reader)),
                grpc.StatusCode.PERMISSION_DENIED,
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() is code
