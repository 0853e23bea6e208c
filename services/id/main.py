"""The ID service process: ``python -m services.id.main``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from libs.auth import DenyList, DenyListFeeder, TokenVerifier
from libs.clock import Clock
from libs.events import OutboxEventSource, event_stream_service
from libs.rpc import GrpcServer, ServerConfig, tune_gc_for_serving
from libs.telemetry import setup_telemetry
from services.id.app import IdContainer, build_container, servicers
from services.id.config import IdConfig

SERVICE_NAME = "furima.id"
AUDIENCE = "furima.id"


@dataclass
class IdService:
    """A running ID service: its container, its server and the deny-list feed."""

    container: IdContainer
    server: GrpcServer
    feeder: DenyListFeeder

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC server."""
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving, then stop the background feed and close the database."""
        await self.server.stop(grace)
        await self.feeder.stop()
        await self.container.db.dispose()


async def start_id_service(
    config: IdConfig, server_config: ServerConfig, *, clock: Clock | None = None, poll_interval: float = 0.5
) -> IdService:
    """Migrate, wire and start the ID service; returns once it is serving."""
    container = await build_container(config, clock=clock)
    events = OutboxEventSource(container.db, container.outbox, SERVICE_NAME, poll_interval=poll_interval)
    # The ID service verifies tokens against its own key ring, and its own event stream
    # feeds its deny-list exactly as it feeds every other service's.
    denylist = DenyList(max_token_ttl=config.access_token_ttl.total_seconds())
    feeder = DenyListFeeder(denylist, events)
    await feeder.start()
    verifier = TokenVerifier(config.issuer, AUDIENCE, container.keyring, denylist)
    server = GrpcServer(service_name=SERVICE_NAME, config=server_config, verifier=verifier)
    for register, servicer, descriptor in servicers(container):
        server.add(register, servicer, descriptor)
    server.add(*event_stream_service(events))
    await server.start()
    return IdService(container, server, feeder)


async def main() -> None:
    """Run until SIGTERM/SIGINT."""
    setup_telemetry(SERVICE_NAME)
    config = IdConfig.from_env()
    service = await start_id_service(config, ServerConfig.from_env("FURIMA_ID", config.port))
    tune_gc_for_serving()
    try:
        await service.server.run_until_signal()
    finally:
        await service.feeder.stop()
        await service.container.db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
