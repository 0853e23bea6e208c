"""The payments service process: ``python -m services.payments.main``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from libs.auth import TokenVerifier
from libs.clock import Clock
from libs.events import OutboxEventSource, event_stream_service
from libs.identity import RemoteIdentity
from libs.rpc import GrpcServer, ServerConfig, tune_gc_for_serving
from libs.telemetry import setup_telemetry
from services.payments.api.ledger import LEDGER_SERVICE, LedgerServicer, register_ledger
from services.payments.api.points import POINTS_SERVICE, PointsServicer, register_points
from services.payments.api.wallet import WALLET_SERVICE, WalletServicer, register_wallet
from services.payments.config import PaymentsConfig
from services.payments.container import PaymentsContainer, build_container

SERVICE_NAME = "furima.payments"
AUDIENCE = "furima.payments"


@dataclass
class PaymentsService:
    """A running payments service."""

    container: PaymentsContainer
    server: GrpcServer
    identity: RemoteIdentity

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC server."""
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving, then close the database."""
        await self.server.stop(grace)
        await self.close()

    async def close(self) -> None:
        """Release connections (the server is already down)."""
        await self.identity.close()
        await self.container.db.dispose()


def build_server(container: PaymentsContainer, server_config: ServerConfig, verifier: TokenVerifier) -> GrpcServer:
    """The gRPC server with every payments servicer and the event stream (not started)."""
    c = container
    server = GrpcServer(service_name=SERVICE_NAME, config=server_config, verifier=verifier)
    server.add(register_ledger, LedgerServicer(c.ledger), LEDGER_SERVICE)
    server.add(register_wallet, WalletServicer(c.wallet), WALLET_SERVICE)
    server.add(register_points, PointsServicer(c.points), POINTS_SERVICE)
    server.add(*event_stream_service(OutboxEventSource(c.db, c.outbox, SERVICE_NAME)))
    return server


async def start_payments_service(
    config: PaymentsConfig,
    server_config: ServerConfig,
    *,
    clock: Clock | None = None,
    jwks_min_refresh_interval: float = 5.0,
) -> PaymentsService:
    """Migrate, wire and start payments against the ID service at ``config.id_target``."""
    identity = RemoteIdentity(
        config.id_target,
        issuer=config.issuer,
        audience=AUDIENCE,
        client_id=config.client_id,
        client_secret=config.client_secret,
        jwks_min_refresh_interval=jwks_min_refresh_interval,
    )
    await identity.start()
    container = await build_container(config, clock=clock)
    server = build_server(container, server_config, identity.verifier)
    await server.start()
    return PaymentsService(container, server, identity)


async def main() -> None:
    """Run until SIGTERM/SIGINT."""
    setup_telemetry(SERVICE_NAME)
    config = PaymentsConfig.from_env()
    service = await start_payments_service(config, ServerConfig.from_env("FURIMA_PAYMENTS", config.port))
    tune_gc_for_serving()
    try:
        await service.server.run_until_signal()
    finally:
        await service.close()


if __name__ == "__main__":
    asyncio.run(main())
