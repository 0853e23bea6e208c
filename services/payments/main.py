"""The payments service process: ``python -m services.payments.main``."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import grpc
from furima.tns.v1.risk_service_pb2 import DESCRIPTOR as RISK_DESCRIPTOR

from libs.auth import TokenVerifier
from libs.clock import Clock
from libs.events import GrpcEventSource, OutboxEventSource, event_stream_service
from libs.identity import RemoteIdentity
from libs.rpc import GrpcServer, ServerConfig, make_channel, tune_gc_for_serving
from libs.telemetry import setup_telemetry
from services.payments.api.cash import CASH_SERVICE, CashServicer, register_cash
from services.payments.api.credit import CREDIT_SERVICE, CreditServicer, register_credit
from services.payments.api.ledger import LEDGER_SERVICE, LedgerServicer, register_ledger
from services.payments.api.payments import PAYMENT_SERVICE, PaymentServicer, register_payments
from services.payments.api.points import POINTS_SERVICE, PointsServicer, register_points
from services.payments.api.wallet import WALLET_SERVICE, WalletServicer, register_wallet
from services.payments.config import PaymentsConfig
from services.payments.container import PaymentsContainer, build_container
from services.payments.service.risk import RiskAssessor, TnsRisk
from services.payments.service.safety_feed import standing_consumer

RISK_SERVICE = RISK_DESCRIPTOR.services_by_name["RiskService"]
SERVICE_NAME = "furima.payments"
AUDIENCE = "furima.payments"


@dataclass
class PaymentsService:
    """A running payments service."""

    container: PaymentsContainer
    server: GrpcServer
    identity: RemoteIdentity
    safety_feed: asyncio.Task[None] | None = None
    tns_channel: grpc.aio.Channel | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC server."""
        return self.server.address

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving, then close the database."""
        await self.server.stop(grace)
        await self.close()

    async def close(self) -> None:
        """Stop the TnS feed and release connections (the server is already down)."""
        if self.safety_feed is not None:
            self.safety_feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.safety_feed
        if self.tns_channel is not None:
            await self.tns_channel.close(None)
        await self.container.housekeeping.stop()
        await self.container.cash.stop()
        await self.container.bank.close()
        await self.identity.close()
        await self.container.db.dispose()


def build_server(container: PaymentsContainer, server_config: ServerConfig, verifier: TokenVerifier) -> GrpcServer:
    """The gRPC server with every payments servicer and the event stream (not started)."""
    c = container
    server = GrpcServer(service_name=SERVICE_NAME, config=server_config, verifier=verifier)
    server.add(register_ledger, LedgerServicer(c.ledger), LEDGER_SERVICE)
    server.add(register_wallet, WalletServicer(c.wallet), WALLET_SERVICE)
    server.add(register_points, PointsServicer(c.points), POINTS_SERVICE)
    server.add(register_payments, PaymentServicer(c.payments), PAYMENT_SERVICE)
    server.add(register_cash, CashServicer(c.cash, c.reconciler), CASH_SERVICE)
    server.add(register_credit, CreditServicer(c.credit), CREDIT_SERVICE)
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
    tns_channel = None
    risk: RiskAssessor | None = None
    if config.tns_target:
        tns_channel = make_channel(config.tns_target, services=[RISK_SERVICE], tokens=identity.tokens)
        risk = TnsRisk(tns_channel, config.risk_timeout, linger=config.batch_linger)
    container = await build_container(config, clock=clock, risk=risk)
    server = build_server(container, server_config, identity.verifier)
    service = PaymentsService(container, server, identity, tns_channel=tns_channel)
    if tns_channel is not None:
        # Suspensions decided by TnS freeze wallets; the feed retries while TnS is down.
        feed = standing_consumer(container.db, GrpcEventSource(tns_channel))
        service.safety_feed = asyncio.create_task(feed.run(), name="payments-tns-standing")
    if config.saga_interval > 0:
        # Bank transfers in flight (this process's or a crashed one's) are driven to the end.
        container.cash.start(config.saga_interval)
    if config.points_sweep_interval > 0:
        container.housekeeping.start(config.points_sweep_interval)
    await server.start()
    return service


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
