"""The payments process end to end: started by `start_payments_service` against a real ID
service, signed in as svc-payments, serving its RPCs and its event stream.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from furima.events.v1 import events_pb2, events_pb2_grpc
from furima.payments.v1 import events_pb2 as payments_events
from furima.payments.v1 import points_service_pb2, wallet_service_pb2
from furima.payments.v1 import points_service_pb2_grpc as points_grpc
from furima.payments.v1 import wallet_service_pb2_grpc as wallet_grpc
from furima.types.v1 import money_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from libs.rpc import ServerConfig, make_channel
from services.payments.config import PaymentsConfig
from services.payments.main import start_payments_service
from tests.stack import running_stack


async def test_started_service_grants_and_streams_the_event(tmp_path: Path) -> None:
    """Marketing's token grants points, a service reads the balance, and PointsGranted is on the stream."""
    async with running_stack(f"sqlite+aiosqlite:///{tmp_path}/id.db", tmp_path) as stack:
        config = PaymentsConfig(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/payments.db",
            issuer=stack.id.container.config.issuer,
            id_target=stack.id.address,
            client_secret=stack.secrets["svc-payments"],
        )
        service = await start_payments_service(config, ServerConfig(port=0), jwks_min_refresh_interval=0.0)
        try:
            marketing = await stack.client_token("svc-marketing", audience=("furima.payments",))
            reader = await stack.client_token("svc-payments", audience=("furima.payments",))
            expires = Timestamp()
            expires.FromDatetime(datetime.now(UTC) + timedelta(days=7))
            async with make_channel(service.address) as channel:
                granted = await points_grpc.PointsServiceStub(channel).GrantPoints(
                    points_service_pb2.GrantPointsRequest(
                        idempotency_key="e2e-1",
                        user_id="usr_e2e",
                        amount=money_pb2.Money(amount=120, currency="JPY"),
                        campaign_id="welcome",
                        expires_at=expires,
                    ),
                    metadata=[("authorization", f"Bearer {marketing}")],
                )
                balance = await wallet_grpc.WalletServiceStub(channel).GetBalance(
                    wallet_service_pb2.GetBalanceRequest(user_id="usr_e2e"),
                    metadata=[("authorization", f"Bearer {reader}")],
                )
                stream = events_pb2_grpc.EventStreamServiceStub(channel).StreamEvents(
                    events_pb2.StreamEventsRequest(after_sequence=0),
                    metadata=[("authorization", f"Bearer {reader}")],
                )
                events = [response.event async for response in stream]
        finally:
            await service.stop(0)
    assert [b.balance.amount for b in balance.balances] == [120]
    assert [e.type for e in events] == ["furima.payments.v1.PointsGranted"]
    payload = payments_events.PointsGranted()
    assert events[0].payload.Unpack(payload)
    assert (payload.grant_id, events[0].source) == (granted.grant.grant_id, "furima.payments")
