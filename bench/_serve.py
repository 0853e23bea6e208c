"""Server processes the benchmark drives: ``python -m bench._serve KIND WORKDIR`` (bare, full, id,
tns, payments, payments_floor, marketing).

Each prints one JSON line to stdout once it serves (its port, plus what a client needs),
then runs until SIGTERM. Everything else the process writes (the JSON access log of the
full stack and of the ID service) goes to stderr, which the parent points at a file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from furima.payments.v1 import payment_service_pb2, payment_service_pb2_grpc

from libs.echo import ECHO_SERVICE, EchoServicer, register_echo

if TYPE_CHECKING:
    from services.payments.config import PaymentsConfig

ECHO_SCOPE = "testing.echo"
ECHO_AUDIENCE = "furima.testing"
ISSUER = "furima-id"
BENCH_KID = "bench"
TOKEN_TTL_S = 3600
BENCH_CURRENCY = "JPY"


def _announce(info: dict[str, Any]) -> None:
    print(json.dumps(info), flush=True)


async def _wait_for_sigterm() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_bare() -> None:
    """A plain ``grpc.aio`` server, no interceptors, no options: the same echo handler."""
    server = grpc.aio.server()
    register_echo(EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _announce({"port": port})
    await _wait_for_sigterm()
    await server.stop(0)


async def serve_payments_floor() -> None:
    """A plain ``grpc.aio`` server answering PaymentService from the request alone (see
    `CannedPayments`): the floor the payments bench compares the real service with.
    """
    server = grpc.aio.server()
    # The other methods answer UNIMPLEMENTED (the generated base class).
    canned = CannedPayments()  # type: ignore[abstract]
    payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(canned, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _announce({"port": port})
    await _wait_for_sigterm()
    await server.stop(0)


class CannedPayments(payment_service_pb2_grpc.PaymentServiceServicer):
    """CreatePayment answers a new id, CAPTURED (risk APPROVE); CompletePayment answers
    COMPLETED — no authentication, database, risk call or ledger: what gRPC and the load
    generator alone cost on this machine, driven exactly as the real service is.
    """

    def __init__(self) -> None:
        self._ids = itertools.count()

    async def CreatePayment(self, request: Any, context: Any) -> Any:  # noqa: N802 — gRPC's method name
        """A captured payment made of the request's fields."""
        payment = payment_service_pb2.Payment(
            payment_id=f"pay_floor{next(self._ids):017d}",
            order_id=request.order_id,
            buyer_id=request.buyer_id,
            seller_id=request.seller_id,
            amount=request.amount,
            status=payment_service_pb2.PAYMENT_STATUS_CAPTURED,
        )
        payment.risk.decision = "APPROVE"
        return payment_service_pb2.CreatePaymentResponse(payment=payment)

    async def CompletePayment(self, request: Any, context: Any) -> Any:  # noqa: N802 — gRPC's method name
        """The payment, completed."""
        completed = payment_service_pb2.Payment(
            payment_id=request.payment_id, status=payment_service_pb2.PAYMENT_STATUS_COMPLETED
        )
        return payment_service_pb2.CompletePaymentResponse(payment=completed)


async def serve_full() -> None:
    """The echo service on `GrpcServer` with the whole middleware and telemetry, as services run."""
    from libs.auth import DenyList, StaticKeys, TokenVerifier
    from libs.rpc import GrpcServer, ServerConfig
    from libs.telemetry import setup_telemetry
    from libs.testing import Forger, claims

    setup_telemetry(ECHO_AUDIENCE, log_format="json")
    forger = Forger(kid=BENCH_KID)
    keys = StaticKeys({BENCH_KID: forger.key.public_key()})
    verifier = TokenVerifier(ISSUER, ECHO_AUDIENCE, keys, DenyList(max_token_ttl=TOKEN_TTL_S))
    server = GrpcServer(service_name=ECHO_AUDIENCE, config=ServerConfig(port=0), verifier=verifier)
    server.add(register_echo, EchoServicer(), ECHO_SERVICE)
    port = await server.start()
    token = forger.sign(claims(scope=ECHO_SCOPE, ttl=TOKEN_TTL_S, subject="usr_bench"))
    _announce({"port": port, "token": token, "subject": "usr_bench"})
    await _wait_for_sigterm()
    await server.stop(0)


async def serve_id(workdir: Path) -> None:
    """The real ID service on a fresh SQLite database, bootstrapped, with production argon2 parameters."""
    from libs.rpc import ServerConfig, tune_gc_for_serving
    from libs.telemetry import setup_telemetry
    from services.id.bootstrap import DEMO_PASSWORD, DEMO_USERS, bootstrap
    from services.id.config import IdConfig
    from services.id.main import SERVICE_NAME, start_id_service

    setup_telemetry(SERVICE_NAME, log_format="json")
    config = IdConfig(database_url=f"sqlite+aiosqlite:///{workdir / 'id.db'}")
    service = await start_id_service(config, ServerConfig(port=0))
    tune_gc_for_serving()  # as services.id.main does
    try:
        secrets = await bootstrap(service.container, workdir / "dev-credentials.json")
        _announce(
            {
                "port": service.server.port,
                "client_id": "furima-dev",
                "client_secret": secrets["furima-dev"],
                "tns_secret": secrets["svc-tns"],
                "payments_secret": secrets["svc-payments"],
                "marketing_secret": secrets["svc-marketing"],
                "email": DEMO_USERS[0][0],
                "password": DEMO_PASSWORD,
                "argon2": dataclasses.asdict(config.argon2),
            }
        )
        await _wait_for_sigterm()
    finally:
        await service.stop(0)


async def serve_tns(workdir: Path, id_port: int, tns_secret: str) -> None:
    """The real TnS service (rules + model) on a fresh SQLite database, trusting the ID
    service on ``id_port`` and acting on it as ``svc-tns``.
    """
    from libs.rpc import ServerConfig, tune_gc_for_serving
    from libs.telemetry import setup_telemetry
    from services.tns.config import TnsConfig
    from services.tns.main import SERVICE_NAME, start_tns_service

    setup_telemetry(SERVICE_NAME, log_format="json")
    config = TnsConfig(
        database_url=f"sqlite+aiosqlite:///{workdir / 'tns.db'}",
        id_target=f"127.0.0.1:{id_port}",
        client_secret=tns_secret,
        rules_poll_interval=0.0,
    )
    service = await start_tns_service(config, ServerConfig(port=0))
    tune_gc_for_serving()  # as services.tns.main does
    try:
        engine = service.container.book.current
        _announce({"port": service.server.port, "rules": engine.rules.version, "model": engine.model.version})
        await _wait_for_sigterm()
    finally:
        await service.stop(0)


async def _fund_buyers(config: PaymentsConfig, buyers: int, cash: int) -> float:
    """Give each bench buyer ``cash`` yen from the bank-clearing book, in one transaction
    on the payments database before the service starts; returns the seconds it took.

    There is no instant public top-up (CashService is to come), so the bench funds its
    buyers the way an operator would load balances: transfers posted with the service's
    own ledger, which keeps every balance and entry consistent for VerifyLedger.
    """
    from services.payments.container import build_container
    from services.payments.domain.accounts import AccountKind, platform_account, user_account
    from services.payments.domain.transfers import Leg, TransferDraft

    started = time.perf_counter()
    container = await build_container(config)
    bank = platform_account(AccountKind.BANK_CLEARING, BENCH_CURRENCY)
    drafts = [
        TransferDraft(
            "bench_seed",
            (Leg(bank, -cash), Leg(user_account(bench_buyer(n), AccountKind.CASH, BENCH_CURRENCY), cash)),
            "bench: buyer's starting cash",
        )
        for n in range(buyers)
    ]
    try:
        await container.db.write_sync(lambda conn: [container.ledger.post(conn, draft) for draft in drafts])
    finally:
        await container.bank.close()
        await container.db.dispose()
    return time.perf_counter() - started


async def serve_payments(
    workdir: Path, id_port: int, secret: str, tns_target: str, database_url: str, buyers: int, cash: int
) -> None:
    """The real payments service on ``database_url`` (migrated, its buyers funded first),
    trusting the ID service on ``id_port`` as ``svc-payments``; with ``tns_target`` every
    authorization is assessed by TnS RiskService, without it payments are unassessed.
    """
    from libs.rpc import ServerConfig, tune_gc_for_serving
    from libs.telemetry import setup_telemetry
    from services.payments.config import PaymentsConfig
    from services.payments.main import SERVICE_NAME, start_payments_service

    setup_telemetry(SERVICE_NAME, log_format="json")
    config = PaymentsConfig(
        database_url=database_url,
        id_target=f"127.0.0.1:{id_port}",
        client_secret=secret,
        tns_target=tns_target,
        # The simulated bank's books (cash top-ups and payouts; idle here) stay in the run's directory.
        bank_database_url=f"sqlite+aiosqlite:///{workdir / 'bank.db'}",
    )
    seed_s = await _fund_buyers(config, buyers, cash)
    service = await start_payments_service(config, ServerConfig(port=0))
    tune_gc_for_serving()  # as services.payments.main does
    try:
        _announce({"port": service.server.port, "buyers": buyers, "cash": cash, "seed_s": round(seed_s, 2)})
        await _wait_for_sigterm()
    finally:
        await service.stop(0)


async def serve_marketing(
    workdir: Path, id_port: int, secret: str, payments_target: str, worker_interval: float
) -> None:
    """The real marketing service on a fresh SQLite database, trusting the ID service on
    ``id_port`` as ``svc-marketing`` and granting points through ``payments_target``; its
    grant queue and campaign clock run every ``worker_interval`` seconds.
    """
    from libs.rpc import ServerConfig, tune_gc_for_serving
    from libs.telemetry import setup_telemetry
    from services.marketing.config import MarketingConfig
    from services.marketing.main import SERVICE_NAME, start_marketing_service

    setup_telemetry(SERVICE_NAME, log_format="json")
    config = MarketingConfig(
        database_url=f"sqlite+aiosqlite:///{workdir / 'marketing.db'}",
        id_target=f"127.0.0.1:{id_port}",
        client_secret=secret,
        payments_target=payments_target,
        worker_interval=worker_interval,
    )
    service = await start_marketing_service(config, ServerConfig(port=0))
    tune_gc_for_serving()  # as services.marketing.main does
    try:
        _announce({"port": service.server.port, "worker_interval": worker_interval})
        await _wait_for_sigterm()
    finally:
        await service.stop(0)


def bench_buyer(n: int) -> str:
    """The user id of the ``n``-th bench buyer (funded by `serve_payments`)."""
    return f"usr_bench_b{n:05d}"


def main(argv: list[str] | None = None) -> None:
    """Serve the named kind until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench._serve")
    parser.add_argument("kind", choices=["bare", "full", "id", "tns", "payments", "payments_floor", "marketing"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--id-port", type=int, default=0, help="tns, payments, marketing: the ID service to trust")
    parser.add_argument("--tns-secret", default="", help="tns: svc-tns's client secret")
    parser.add_argument("--payments-secret", default="", help="payments: svc-payments's client secret")
    parser.add_argument("--tns-target", default="", help="payments: TnS host:port for risk checks (empty: none)")
    parser.add_argument("--database-url", default="", help="payments: its database (default: WORKDIR/payments.db)")
    parser.add_argument("--marketing-secret", default="", help="marketing: svc-marketing's client secret")
    parser.add_argument("--payments-target", default="", help="marketing: payments host:port for points grants")
    parser.add_argument(
        "--worker-interval", type=float, default=1.0, help="marketing: seconds between grant-queue rounds"
    )
    parser.add_argument("--buyers", type=int, default=2_000, help="payments: how many buyers to fund")
    parser.add_argument("--cash", type=int, default=1_000_000, help="payments: each buyer's starting cash (JPY)")
    args = parser.parse_args(argv)
    if args.kind == "bare":
        asyncio.run(serve_bare())
    elif args.kind == "full":
        asyncio.run(serve_full())
    elif args.kind == "payments_floor":
        asyncio.run(serve_payments_floor())
    elif args.kind == "id":
        asyncio.run(serve_id(args.workdir))
    elif args.kind == "tns":
        asyncio.run(serve_tns(args.workdir, args.id_port, args.tns_secret))
    elif args.kind == "marketing":
        asyncio.run(
            serve_marketing(
                args.workdir, args.id_port, args.marketing_secret, args.payments_target, args.worker_interval
            )
        )
    else:
        url = args.database_url or f"sqlite+aiosqlite:///{args.workdir / 'payments.db'}"
        asyncio.run(
            serve_payments(
                args.workdir, args.id_port, args.payments_secret, args.tns_target, url, args.buyers, args.cash
            )
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
