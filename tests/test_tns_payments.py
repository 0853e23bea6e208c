"""Trust & Safety and Payments together: a suspension decided by TnS freezes the user's
wallet in Payments (through TnS's event stream), and lifting it thaws the wallet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from furima.payments.v1 import wallet_service_pb2
from furima.payments.v1 import wallet_service_pb2_grpc as wallet_grpc
from furima.tns.v1 import case_service_pb2

from libs.rpc import make_channel
from libs.storage import is_postgres
from libs.testing import postgres_admin_url, temporary_postgres_database
from services.tns.main import TnsService
from tests.helpers import BOB, bearer, sign_in
from tests.stack import Stack, running_payments
from tests.test_tns_enforcement import DRUGS
from tests.tns_helpers import LISTING, Tns, listing, moderate, service_token


async def _frozen(channel_target: str, token: str, user_id: str) -> bool:
    async with make_channel(channel_target) as channel:
        balance = await wallet_grpc.WalletServiceStub(channel).GetBalance(
            wallet_service_pb2.GetBalanceRequest(user_id=user_id), metadata=bearer(token)
        )
    return balance.frozen


async def _until(probe: Callable[[], Awaitable[bool]], expected: bool, within: float = 20.0) -> bool:
    # Payments learns of the standing through its feed of TnS's events, which reconnects and
    # retries a failed batch after up to 5 s: allow for a retry on a loaded machine; a
    # wallet that reads as expected returns at once.
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value == expected or time.monotonic() > deadline:
            return bool(value)
        await asyncio.sleep(0.05)


async def test_tns_suspension_freezes_the_wallet_and_a_granted_appeal_thaws_it(
    stack: Stack, tns: TnsService, tns_api: Tns, database_url: str, tmp_path: Path
) -> None:
    """Third strike: the wallet reads frozen within seconds; the appeal granted, it is thawed."""
    if is_postgres(database_url):
        admin = postgres_admin_url()
        assert admin is not None
        async with temporary_postgres_database(admin) as url:
            await _scenario(stack, tns, tns_api, url)
    else:
        await _scenario(stack, tns, tns_api, f"sqlite+aiosqlite:///{tmp_path}/payments.db")


async def _scenario(stack: Stack, tns: TnsService, tns_api: Tns, payments_url: str) -> None:
    async with running_payments(stack, payments_url, tns_target=tns.address) as payments:
        moderator = await service_token(stack, "tns.moderate")
        reader = await stack.client_token("svc-payments", scope="payments.read")
        bob = await sign_in(stack, BOB)
        first = listing(bob.user.id, *DRUGS)
        await moderate(tns_api, moderator, first)
        await moderate(tns_api, moderator, listing(bob.user.id, *DRUGS))
        appeal = await tns_api.cases.FileAppeal(
            case_service_pb2.FileAppealRequest(kind=LISTING, content_id=first.content_id, statement="CBD oil"),
            metadata=bearer(bob.tokens.access_token),
        )
        assert not await _frozen(payments.address, reader, bob.user.id)
        await moderate(tns_api, moderator, listing(bob.user.id, *DRUGS))  # the third strike: suspended

        assert await _until(lambda: _frozen(payments.address, reader, bob.user.id), True) is True

        agent = await stack.client_token("cs-console")
        claim = case_service_pb2.ClaimCaseRequest(case_id=appeal.case.case_id)
        await tns_api.cases.ClaimCase(claim, metadata=bearer(agent))
        resolve = case_service_pb2.ResolveCaseRequest(
            case_id=appeal.case.case_id, resolution=case_service_pb2.RESOLUTION_OVERTURN, note="legal"
        )
        await tns_api.cases.ResolveCase(resolve, metadata=bearer(agent))
        assert await _until(lambda: _frozen(payments.address, reader, bob.user.id), False) is False
