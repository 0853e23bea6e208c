"""Transaction risk with what TnS learns from the ID service's event stream."""

from __future__ import annotations

import asyncio
import itertools
import time

from furima.id.v1 import user_service_pb2
from furima.tns.v1 import risk_service_pb2
from furima.types.v1 import money_pb2

from tests.helpers import BOB, bearer, user_id, users
from tests.stack import Stack
from tests.tns_helpers import Tns

_ids = itertools.count(1)


async def _assess(tns: Tns, token: str, buyer: str, amount: int = 3_000) -> risk_service_pb2.RiskAssessment:
    request = risk_service_pb2.AssessTransactionRequest(
        transaction_id=f"pay_{next(_ids)}",
        buyer_id=buyer,
        seller_id="usr_seller",
        amount=money_pb2.Money(amount=amount, currency="JPY"),
        payment_method=risk_service_pb2.PAYMENT_METHOD_BALANCE,
        device_id="dev-1",
        ip_address="203.0.113.7",
    )
    return (await tns.risk.AssessTransaction(request, metadata=bearer(token))).assessment


async def test_a_suspension_at_id_reaches_risk_through_the_event_feed(stack: Stack, tns_api: Tns) -> None:
    """Bob's small purchase is approved; once ID suspends him (an ID event TnS follows) the next one is DECLINEd."""
    payments = await stack.client_token("svc-payments", scope="tns.risk")
    bob = await user_id(stack, BOB)
    first = await _assess(tns_api, payments, bob)
    assert first.decision == risk_service_pb2.RISK_DECISION_APPROVE

    admin = await stack.client_token("svc-tns", scope="id.users.admin")
    await users(stack).SuspendUser(
        user_service_pb2.SuspendUserRequest(user_id=bob, reason="fraud"), metadata=bearer(admin)
    )
    # TnS learns of it through its ID feed, which retries a failed batch after up to 5 s:
    # allow for a retry on a loaded machine; a DECLINE ends the wait at once.
    deadline = time.monotonic() + 20
    while (latest := await _assess(tns_api, payments, bob)).decision != risk_service_pb2.RISK_DECISION_DECLINE:
        assert time.monotonic() < deadline, f"still {latest.decision} after 20 s"
        await asyncio.sleep(0.05)
    assert "SUSPENDED_PARTY" in [r.code for r in latest.reasons]
