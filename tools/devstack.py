"""The development stack: ``make migrate``, ``make run`` and ``make token``.

``run`` migrates the embedded databases, bootstraps the development clients and demo
users, starts every service as its own process, waits until each reports SERVING, and
prints how to call them. Ctrl-C (or SIGTERM) stops them all gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from furima.id.v1 import oauth_service_pb2, oauth_service_pb2_grpc
from furima.marketing.v1 import campaign_service_pb2 as cmp_pb
from furima.marketing.v1 import campaign_service_pb2_grpc as cmp_grpc
from furima.marketing.v1 import segment_service_pb2 as seg_pb
from furima.marketing.v1 import segment_service_pb2_grpc as seg_grpc
from furima.types.v1 import money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.rpc import make_channel
from libs.storage import Database, upgrade
from services.id.bootstrap import bootstrap
from services.id.config import IdConfig
from services.id.container import build_container
from services.marketing.config import MarketingConfig
from services.marketing.container import MIGRATIONS as MARKETING_MIGRATIONS
from services.payments.config import PaymentsConfig
from services.payments.container import MIGRATIONS as PAYMENTS_MIGRATIONS
from services.tns.config import TnsConfig
from services.tns.container import MIGRATIONS as TNS_MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
CREDENTIALS = VAR / "dev-credentials.json"


@dataclass(frozen=True)
class ServiceProcess:
    """One service of the stack."""

    name: str
    module: str
    port: int


# Started in this order, each once the previous one serves: everyone needs the ID
# service's keys at start, payments follows TnS's events and asks it about risk, and
# marketing follows all three streams and grants points through payments.
SERVICES = [
    ServiceProcess("id", "services.id.main", int(os.environ.get("FURIMA_ID_PORT", "50051"))),
    ServiceProcess("tns", "services.tns.main", int(os.environ.get("FURIMA_TNS_PORT", "50053"))),
    ServiceProcess("payments", "services.payments.main", int(os.environ.get("FURIMA_PAYMENTS_PORT", "50052"))),
    ServiceProcess("marketing", "services.marketing.main", int(os.environ.get("FURIMA_MARKETING_PORT", "50054"))),
]


def _port(name: str) -> int:
    return next(s.port for s in SERVICES if s.name == name)


async def migrate() -> dict[str, str]:
    """Apply every service's migrations and bootstrap the ID service; returns the dev
    client secrets.
    """
    container = await build_container(IdConfig.from_env())
    try:
        secrets = await bootstrap(container, CREDENTIALS)
    finally:
        await container.db.dispose()
    for url, migrations in (
        (PaymentsConfig.from_env().database_url, PAYMENTS_MIGRATIONS),
        (TnsConfig.from_env().database_url, TNS_MIGRATIONS),
        (MarketingConfig.from_env().database_url, MARKETING_MIGRATIONS),
    ):
        db = Database(url)
        try:
            await upgrade(db, migrations)
        finally:
            await db.dispose()
    return secrets


async def wait_serving(port: int, within: float = 30.0) -> None:
    """Wait until the server on ``port`` reports SERVING."""
    deadline = asyncio.get_running_loop().time() + within
    async with make_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nothing SERVING on port {port} after {within:.0f}s")
            await asyncio.sleep(0.2)


async def run() -> int:
    """Start the stack and keep it running until interrupted."""
    secrets = await migrate()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # Each service signs in to the ID service as its bootstrapped client.
        "FURIMA_TNS_CLIENT_SECRET": os.environ.get("FURIMA_TNS_CLIENT_SECRET") or secrets["svc-tns"],
        "FURIMA_PAYMENTS_CLIENT_SECRET": os.environ.get("FURIMA_PAYMENTS_CLIENT_SECRET") or secrets["svc-payments"],
        "FURIMA_MARKETING_CLIENT_SECRET": os.environ.get("FURIMA_MARKETING_CLIENT_SECRET") or secrets["svc-marketing"],
        # Payments and marketing follow TnS's standing changes; they retry until TnS is up.
        "FURIMA_TNS_TARGET": os.environ.get("FURIMA_TNS_TARGET") or f"127.0.0.1:{_port('tns')}",
        # Marketing grants points through payments and follows its payment events.
        "FURIMA_PAYMENTS_TARGET": os.environ.get("FURIMA_PAYMENTS_TARGET") or f"127.0.0.1:{_port('payments')}",
    }
    procs: list[asyncio.subprocess.Process] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for service in SERVICES:
            procs.append(await asyncio.create_subprocess_exec(sys.executable, "-m", service.module, env=env, cwd=ROOT))
            await wait_serving(service.port, within=60)
    except (TimeoutError, OSError) as exc:
        print(f"the stack did not come up: {exc}", file=sys.stderr)
        stop.set()
    else:
        try:
            await seed_demo_campaign(secrets["furima-dev"])
        except grpc.aio.AioRpcError as exc:
            print(f"the demo campaign could not be created: {exc.code().name} {exc.details()}", file=sys.stderr)
        print(_banner(), flush=True)
    exits = [asyncio.create_task(p.wait()) for p in procs]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*(p.wait() for p in procs))
    stopper.cancel()
    return 0 if stop.is_set() and all(c in (0, -signal.SIGTERM) for c in codes) else 1


async def seed_demo_campaign(dev_secret: str) -> None:
    """Demo data for marketing (idempotent): a segment of every user and a running
    campaign giving 300 points for a first listing.
    """
    async with make_channel(f"127.0.0.1:{_port('id')}") as id_channel:
        reply = await oauth_service_pb2_grpc.OAuthServiceStub(id_channel).Token(
            oauth_service_pb2.TokenRequest(
                grant_type="client_credentials",
                client_id="furima-dev",
                client_secret=dev_secret,
                scope="marketing.write marketing.read",
            ),
            timeout=5,
        )
    auth = [("authorization", f"Bearer {reply.tokens.access_token}")]
    async with make_channel(f"127.0.0.1:{_port('marketing')}") as channel:
        segment = seg_pb.Segment(segment_id="everyone", display_name="Everyone", expression="true")
        await seg_grpc.SegmentServiceStub(channel).CreateSegment(
            seg_pb.CreateSegmentRequest(segment=segment), metadata=auth, timeout=10
        )
        campaigns = cmp_grpc.CampaignServiceStub(channel)
        points = cmp_pb.PointsIncentive(amount=money_pb2.Money(amount=300, currency="JPY"), expiry_days=90)
        campaign = cmp_pb.Campaign(
            name="Points for a first listing",
            segment_id="everyone",
            trigger=cmp_pb.Trigger(event=cmp_pb.EventTrigger(event_type="item_listed", first_only=True)),
            incentive=cmp_pb.Incentive(points=points),
            communication=cmp_pb.Communication(
                channel=cmp_pb.CHANNEL_PUSH, title="Thanks for listing!", body="{{incentive.amount}} points are yours"
            ),
            budget=money_pb2.Money(amount=1_000_000, currency="JPY"),
            per_user_cap=1,
        )
        created = await campaigns.CreateCampaign(
            cmp_pb.CreateCampaignRequest(idempotency_key="demo-first-listing", campaign=campaign), metadata=auth
        )
        await campaigns.StartCampaign(
            cmp_pb.StartCampaignRequest(campaign_id=created.campaign.campaign_id), metadata=auth
        )


def _banner() -> str:
    lines = ["", "furima is running:"]
    lines += [f"  {s.name:<10} 127.0.0.1:{s.port}" for s in SERVICES]
    lines += [
        "",
        "Try it (server reflection is on):",
        "  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge --list-methods http://127.0.0.1:50051",
        "  TOKEN=$(make -s token)",
        '  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $TOKEN" \\',
        '    -d \'{"userId": "<id from SignIn>"}\' http://127.0.0.1:50051/furima.id.v1.UserService/GetUser',
        "  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge \\",
        '    -d \'{"email": "alice@example.com", "password": "furima-demo-password"}\' \\',
        "    http://127.0.0.1:50051/furima.id.v1.UserService/SignIn",
        '  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $TOKEN" \\',
        """    -d '{"content": {"kind": "CONTENT_KIND_MESSAGE", "contentId": "m1", "authorId": "usr_demo",""",
        """         "body": "銀行振込でお願いします 口座番号 1234567"}}' \\""",
        "    http://127.0.0.1:50053/furima.tns.v1.ModerationService/ModerateContent",
        '  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $TOKEN" \\',
        """    -d '{"idempotencyKey": "t1", "userId": "usr_demo", "amount": {"amount": 5000, "currency": "JPY"},""",
        """         "bankAccount": "0001-001-1234567"}' http://127.0.0.1:50052/furima.payments.v1.CashService/TopUp""",
        '  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $TOKEN" \\',
        """    -d '{"idempotencyKey": "p1", "orderId": "ord_1", "buyerId": "usr_demo", "sellerId": "usr_shop",""",
        """         "amount": {"amount": 1200, "currency": "JPY"}, "capture": true}' \\""",
        "    http://127.0.0.1:50052/furima.payments.v1.PaymentService/CreatePayment",
        '  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $TOKEN" \\',
        """    -d '{}' http://127.0.0.1:50052/furima.payments.v1.LedgerService/VerifyLedger""",
        '  .venv/bin/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $TOKEN" \\',
        """    -d '{"event": {"eventId": "e1", "userId": "usr_demo", "type": "item_listed",""",
        """         "occurredAt": "2026-11-30T12:00:00Z"}}' http://127.0.0.1:50054/furima.marketing.v1.EventService/TrackEvent""",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


async def token(client_id: str, scope: str) -> str:
    """A client-credentials token for a development client of the running stack."""
    if not CREDENTIALS.exists():
        raise SystemExit("no development credentials yet: start the stack with `make run` first")
    secrets = json.loads(CREDENTIALS.read_text())["clients"]
    async with make_channel(f"127.0.0.1:{SERVICES[0].port}") as channel:
        try:
            response = await oauth_service_pb2_grpc.OAuthServiceStub(channel).Token(
                oauth_service_pb2.TokenRequest(
                    grant_type="client_credentials", client_id=client_id, client_secret=secrets[client_id], scope=scope
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            reason = exc.code().name
            raise SystemExit(f"cannot get a token from the ID service ({reason}): is `make run` running?") from None
    return response.tokens.access_token


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply migrations and bootstrap dev clients and demo users")
    sub.add_parser("run", help="start the whole stack")
    tok = sub.add_parser("token", help="print a bearer token for a development client")
    tok.add_argument("--client", default="furima-dev")
    tok.add_argument("--scope", default="")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.command == "migrate":
        secrets = asyncio.run(migrate())
        print(f"migrated; {len(secrets)} development client secrets in {CREDENTIALS.relative_to(ROOT)}")
        return 0
    if args.command == "run":
        return asyncio.run(run())
    print(asyncio.run(token(args.client, args.scope)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
