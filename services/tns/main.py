"""The TnS service process: ``python -m services.tns.main``."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from libs.clock import Clock
from libs.events import GrpcEventSource, OutboxEventSource, event_stream_service
from libs.identity import RemoteIdentity
from libs.rpc import GrpcServer, ServerConfig, tune_gc_for_serving
from libs.telemetry import setup_telemetry
from services.tns.api.cases import CASE_SERVICE, CaseServicer, register_cases
from services.tns.api.enforcement import ENFORCEMENT_SERVICE, EnforcementServicer, register_enforcement
from services.tns.api.moderation import MODERATION_SERVICE, ModerationServicer, register_moderation
from services.tns.api.risk import RISK_SERVICE, RiskServicer, register_risk
from services.tns.api.rules import RULE_SERVICE, RuleServicer, register_rules
from services.tns.clients import GrpcUserAdmin
from services.tns.config import TnsConfig
from services.tns.container import TnsContainer, build_container
from services.tns.service.identity_feed import identity_consumer

SERVICE_NAME = "furima.tns"
AUDIENCE = "furima.tns"


@dataclass
class TnsService:
    """A running TnS service and its background work."""

    container: TnsContainer
    server: GrpcServer
    identity: RemoteIdentity
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC server."""
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving, then the background work, then close the database."""
        await self.server.stop(grace)
        await self.close()

    async def close(self) -> None:
        """Stop the background work and release connections (the server is already down)."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.container.book.stop()
        await self.container.dispatcher.stop()
        await self.container.rescanner.stop()
        await self.identity.close()
        await self.container.db.dispose()


async def start_tns_service(
    config: TnsConfig,
    server_config: ServerConfig,
    *,
    clock: Clock | None = None,
    jwks_min_refresh_interval: float = 5.0,
) -> TnsService:
    """Migrate, wire and start TnS against the ID service at ``config.id_target``."""
    identity = RemoteIdentity(
        config.id_target,
        issuer=config.issuer,
        audience=AUDIENCE,
        client_id=config.client_id,
        client_secret=config.client_secret,
        jwks_min_refresh_interval=jwks_min_refresh_interval,
    )
    await identity.start()
    container = await build_container(config, GrpcUserAdmin(identity.channel), clock=clock)
    c = container
    server = GrpcServer(service_name=SERVICE_NAME, config=server_config, verifier=identity.verifier)
    server.add(register_moderation, ModerationServicer(c.moderator, c.desk), MODERATION_SERVICE)
    server.add(register_enforcement, EnforcementServicer(c.enforcer, c.clock), ENFORCEMENT_SERVICE)
    server.add(register_cases, CaseServicer(c.desk, c.trail), CASE_SERVICE)
    server.add(register_risk, RiskServicer(c.risk), RISK_SERVICE)
    server.add(register_rules, RuleServicer(c.book, c.rescanner), RULE_SERVICE)
    server.add(*event_stream_service(OutboxEventSource(c.db, c.outbox, SERVICE_NAME)))
    users_feed = identity_consumer(c.db, GrpcEventSource(identity.channel))
    service = TnsService(container, server, identity)
    service.tasks.append(asyncio.create_task(users_feed.run(), name="tns-id-users-feed"))
    c.dispatcher.start()
    c.book.watch(config.rules_poll_interval)
    await server.start()
    return service


async def main() -> None:
    """Run until SIGTERM/SIGINT."""
    setup_telemetry(SERVICE_NAME)
    config = TnsConfig.from_env()
    service = await start_tns_service(config, ServerConfig.from_env("FURIMA_TNS", config.port))
    tune_gc_for_serving()
    try:
        await service.server.run_until_signal()
    finally:
        await service.close()


if __name__ == "__main__":
    asyncio.run(main())
