"""An in-process furima stack for cross-service tests: the real ID service on a local
port, and a second service built from libs/ (the echo service) that knows the ID
service only through its public contract.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from furima.id.v1 import oauth_service_pb2, oauth_service_pb2_grpc

from libs.clock import Clock
from libs.echo import ECHO_SERVICE, Downstream, EchoServicer, register_echo
from libs.identity import RemoteIdentity
from libs.rpc import GrpcServer, ServerConfig, make_channel
from services.id.bootstrap import bootstrap
from services.id.config import IdConfig
from services.id.domain.passwords import Argon2Params
from services.id.main import IdService, start_id_service
from services.marketing.config import MarketingConfig
from services.marketing.main import MarketingService, start_marketing_service
from services.payments.config import PaymentsConfig
from services.payments.main import PaymentsService, start_payments_service
from services.tns.config import TnsConfig
from services.tns.main import TnsService, start_tns_service

FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Stack:
    """Handles to the running services and the development credentials."""

    id: IdService
    secrets: dict[str, str]
    channel: grpc.aio.Channel

    @property
    def oauth(self) -> oauth_service_pb2_grpc.OAuthServiceStub:
        """A stub of the ID service's token endpoint."""
        return oauth_service_pb2_grpc.OAuthServiceStub(self.channel)

    async def client_token(self, client_id: str = "furima-dev", scope: str = "", audience: tuple[str, ...] = ()) -> str:
        """An access token from the client-credentials grant."""
        response = await self.oauth.Token(
            oauth_service_pb2.TokenRequest(
                grant_type="client_credentials",
                client_id=client_id,
                client_secret=self.secrets[client_id],
                scope=scope,
                audience=list(audience),
            )
        )
        return response.tokens.access_token


@asynccontextmanager
async def running_stack(database_url: str, tmp_path: Path, *, clock: Clock | None = None) -> AsyncIterator[Stack]:
    """Start the ID service on a fresh database, bootstrap the dev clients and demo users."""
    config = IdConfig(database_url=database_url, argon2=FAST_ARGON2)
    service = await start_id_service(config, ServerConfig(port=0), clock=clock, poll_interval=0.1)
    try:
        secrets = await bootstrap(service.container, tmp_path / "dev-credentials.json")
        async with make_channel(service.address) as channel:
            yield Stack(service, secrets, channel)
    finally:
        await service.stop(0)


@dataclass
class EchoService:
    """A second service built from libs/ only."""

    server: GrpcServer
    identity: RemoteIdentity

    @property
    def address(self) -> str:
        """``host:port`` of the echo server."""
        return self.server.address


@asynccontextmanager
async def running_echo(stack: Stack, downstream: Downstream | None = None) -> AsyncIterator[EchoService]:
    """Start the echo service, authenticating as ``svc-tns`` against the stack's ID service."""
    identity = RemoteIdentity(
        stack.id.address,
        issuer=stack.id.container.config.issuer,
        audience="furima.testing",
        client_id="svc-tns",
        client_secret=stack.secrets["svc-tns"],
        jwks_min_refresh_interval=0.0,
    )
    await identity.start()
    server = GrpcServer(service_name="furima.testing", config=ServerConfig(port=0), verifier=identity.verifier)
    server.add(register_echo, EchoServicer(downstream), ECHO_SERVICE)
    await server.start()
    try:
        yield EchoService(server, identity)
    finally:
        await server.stop(0)
        await identity.close()


@asynccontextmanager
async def running_tns(
    stack: Stack,
    database_url: str,
    *,
    rules_path: Path | None = None,
    case_lease: float = 300.0,
    clock: Clock | None = None,
) -> AsyncIterator[TnsService]:
    """Start TnS on its own fresh database, signed in to the stack's ID service as ``svc-tns``."""
    defaults = TnsConfig()
    config = TnsConfig(
        database_url=database_url,
        issuer=stack.id.container.config.issuer,
        id_target=stack.id.address,
        client_secret=stack.secrets["svc-tns"],
        rules_path=rules_path or defaults.rules_path,
        rules_poll_interval=0.0,
        case_lease=timedelta(seconds=case_lease),
    )
    service = await start_tns_service(config, ServerConfig(port=0), clock=clock, jwks_min_refresh_interval=0.0)
    try:
        yield service
    finally:
        await service.stop(0)


@asynccontextmanager
async def running_payments(
    stack: Stack, database_url: str, *, tns_target: str = "", port: int = 0
) -> AsyncIterator[PaymentsService]:
    """Start payments on its own fresh database (and a simulated bank in a temporary
    directory), signed in as ``svc-payments``; with ``tns_target`` it assesses payments
    and follows that TnS's standing changes (wallet freezes).
    """
    with tempfile.TemporaryDirectory(prefix="furima-bank-") as bank_dir:
        config = PaymentsConfig(
            database_url=database_url,
            issuer=stack.id.container.config.issuer,
            id_target=stack.id.address,
            client_secret=stack.secrets["svc-payments"],
            tns_target=tns_target,
            bank_database_url=f"sqlite+aiosqlite:///{bank_dir}/bank.db",
            bank_latency_ms=0.0,
        )
        service = await start_payments_service(config, ServerConfig(port=port), jwks_min_refresh_interval=0.0)
        try:
            yield service
        finally:
            await service.stop(0)


@asynccontextmanager
async def running_marketing(
    stack: Stack, database_url: str, *, payments_target: str = "", tns_target: str = ""
) -> AsyncIterator[MarketingService]:
    """Start marketing on its own fresh database, signed in as ``svc-marketing``, granting
    points through ``payments_target`` and following the ID, Payments and TnS streams;
    background work every 0.1 s.
    """
    config = MarketingConfig(
        database_url=database_url,
        issuer=stack.id.container.config.issuer,
        id_target=stack.id.address,
        client_secret=stack.secrets["svc-marketing"],
        payments_target=payments_target,
        tns_target=tns_target,
        worker_interval=0.1,
    )
    service = await start_marketing_service(config, ServerConfig(port=0), jwks_min_refresh_interval=0.0)
    try:
        yield service
    finally:
        await service.stop(0)
