"""The marketing service process: ``python -m services.marketing.main``."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import grpc
import structlog
from furima.payments.v1.points_service_pb2 import DESCRIPTOR as POINTS_DESCRIPTOR

from libs.auth import TokenVerifier
from libs.clock import Clock
from libs.events import GrpcEventSource, OutboxEventSource, event_stream_service
from libs.identity import RemoteIdentity
from libs.periodic import Periodic
from libs.rpc import GrpcServer, ServerConfig, make_channel, tune_gc_for_serving
from libs.telemetry import setup_telemetry
from services.marketing.api.campaigns import CAMPAIGN_SERVICE, CampaignServicer, register_campaigns
from services.marketing.api.events import EVENT_SERVICE, EventServicer, register_events
from services.marketing.api.experiments import EXPERIMENT_SERVICE, ExperimentServicer, register_experiments
from services.marketing.api.segments import SEGMENT_SERVICE, SegmentServicer, register_segments
from services.marketing.config import MarketingConfig
from services.marketing.container import MarketingContainer, build_container
from services.marketing.service.feeds import feeds
from services.marketing.service.grants import PaymentsPoints, PointsGranter

SERVICE_NAME = "furima.marketing"
AUDIENCE = "furima.marketing"
POINTS_SERVICE = POINTS_DESCRIPTOR.services_by_name["PointsService"]
SEGMENT_REFRESH_SECONDS = 300.0
FEED_LINGER_S = 0.05
"""How long a feed batch waits after its first event for more."""
log = structlog.get_logger("furima.marketing")


@dataclass
class MarketingService:
    """A running marketing service."""

    container: MarketingContainer
    server: GrpcServer
    identity: RemoteIdentity
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    rounds: list[Periodic] = field(default_factory=list)

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC server."""
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving, then everything else."""
        await self.server.stop(grace)
        await self.close()

    async def close(self) -> None:
        """Stop the feeds and the background work, release connections."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rounds in self.rounds:
            await rounds.stop()
        await self.container.campaigns.stop()
        if self.container.grants is not None:
            await self.container.grants.stop()
        for channel in self.channels:
            await channel.close(None)
        await self.identity.close()
        await self.container.db.dispose()


def build_server(container: MarketingContainer, server_config: ServerConfig, verifier: TokenVerifier) -> GrpcServer:
    """The gRPC server with every marketing servicer and the event stream (not started)."""
    c = container
    server = GrpcServer(service_name=SERVICE_NAME, config=server_config, verifier=verifier)
    server.add(register_events, EventServicer(c.intake, c.catalogue), EVENT_SERVICE)
    server.add(register_segments, SegmentServicer(c.segments), SEGMENT_SERVICE)
    server.add(register_campaigns, CampaignServicer(c.campaigns), CAMPAIGN_SERVICE)
    server.add(register_experiments, ExperimentServicer(c.experiments), EXPERIMENT_SERVICE)
    server.add(*event_stream_service(OutboxEventSource(c.db, c.outbox, SERVICE_NAME)))
    return server


async def _refresh_segments(container: MarketingContainer, interval: float) -> None:
    # Windows and ages drift with time: members whose condition ran out leave even
    # without a new event of theirs.
    while True:
        await asyncio.sleep(interval)
        try:
            await container.segments.refresh()
        except Exception as exc:  # noqa: BLE001 — the next round retries
            log.warning("segment refresh failed", error=str(exc))


async def start_marketing_service(
    config: MarketingConfig,
    server_config: ServerConfig,
    *,
    clock: Clock | None = None,
    jwks_min_refresh_interval: float = 5.0,
    segment_refresh_interval: float = SEGMENT_REFRESH_SECONDS,
) -> MarketingService:
    """Migrate, wire and start marketing against the ID service at ``config.id_target``."""
    identity = RemoteIdentity(
        config.id_target,
        issuer=config.issuer,
        audience=AUDIENCE,
        client_id=config.client_id,
        client_secret=config.client_secret,
        jwks_min_refresh_interval=jwks_min_refresh_interval,
    )
    await identity.start()
    channels: list[grpc.aio.Channel] = []
    sources = {"id": GrpcEventSource(identity.channel)}
    granter: PointsGranter | None = None
    if config.payments_target:
        payments = make_channel(config.payments_target, services=[POINTS_SERVICE], tokens=identity.tokens)
        channels.append(payments)
        granter = PaymentsPoints(payments)
        sources["payments"] = GrpcEventSource(payments)
    if config.tns_target:
        tns = make_channel(config.tns_target, tokens=identity.tokens)
        channels.append(tns)
        sources["tns"] = GrpcEventSource(tns)
    container = await build_container(config, clock=clock, granter=granter)
    server = build_server(container, server_config, identity.verifier)
    service = MarketingService(container, server, identity, channels)
    for feed in feeds(container.db, container.intake, sources):
        # Grants come back from Payments one by one: wait a moment to apply them together.
        service.tasks.append(asyncio.create_task(feed.run(linger=FEED_LINGER_S), name=feed.name))
    if config.worker_interval > 0:
        container.campaigns.start(config.worker_interval)
        scheduled = Periodic("marketing-scheduled-runs", container.schedules.run_due)
        scheduled.start(config.worker_interval)
        service.rounds.append(scheduled)
        if container.grants is not None:
            container.grants.start(config.worker_interval)
        service.tasks.append(
            asyncio.create_task(_refresh_segments(container, segment_refresh_interval), name="segment-refresh")
        )
    await server.start()
    return service


async def main() -> None:
    """Run until SIGTERM/SIGINT."""
    setup_telemetry(SERVICE_NAME)
    config = MarketingConfig.from_env()
    service = await start_marketing_service(config, ServerConfig.from_env("FURIMA_MARKETING", config.port))
    tune_gc_for_serving()
    try:
        await service.server.run_until_signal()
    finally:
        await service.close()


if __name__ == "__main__":
    asyncio.run(main())
