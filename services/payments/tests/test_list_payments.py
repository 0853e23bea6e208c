"""ListPayments over gRPC: a user's payments as buyer, seller or either, newest first, paged,
filtered by status; a user lists only their own; bad requests name their fields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from furima.payments.v1 import payment_service_pb2 as pb
from furima.payments.v1 import payment_service_pb2_grpc as pb_grpc

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import FrozenClock
from libs.rpc import ServerConfig, error_details, make_channel
from libs.storage import Database
from libs.testing import Forger, claims
from services.payments.api.payments import PAYMENT_SERVICE
from services.payments.config import PaymentsConfig
from services.payments.container import PaymentsContainer, assemble
from services.payments.main import build_server
from services.payments.tests.payments_helpers import ScriptedRisk, order, top_up

SVC = "svc-orders"
BUYER, SELLER, OTHER = "usr_buyer", "usr_seller", "usr_other"


class Shop:
    """A payments server over gRPC with payments between three users."""

    def __init__(self, stub: pb_grpc.PaymentServiceStub, key: Forger, made: dict[str, pb.Payment]) -> None:
        self.stub = stub
        self.key = key
        self.made = made
        """Every payment made, by id, as GetPayment shows it."""

    def token(self, subject: str = SVC, scope: str = "payments.read") -> list[tuple[str, str]]:
        """Call metadata with a token of ``subject`` (a usr_ subject is a user token)."""
        signed = self.key.sign(claims(scope=scope, audience=["furima.payments"], subject=subject, client_id=SVC))
        return [("authorization", f"Bearer {signed}")]

    async def every_page(self, request: pb.ListPaymentsRequest) -> list[list[str]]:
        """The ids of each page of a listing, following the tokens to the end."""
        pages: list[list[str]] = []
        while True:
            reply = await self.stub.ListPayments(request, metadata=self.token())
            pages.append([p.payment_id for p in reply.payments])
            if not reply.next_page_token:
                return pages
            request.page_token = reply.next_page_token


@pytest.fixture
async def shop(db: Database, clock: FrozenClock) -> AsyncIterator[Shop]:
    """Seven purchases of BUYER from SELLER (one canceled, two completed, one partly
    refunded), two of SELLER from BUYER, one between OTHER and SELLER.
    """
    c: PaymentsContainer = assemble(PaymentsConfig(database_url=db.url), db, clock, risk=ScriptedRisk())
    for user in (BUYER, SELLER, OTHER):
        await top_up(c, user, 100_000)
    ids: list[str] = []
    for i in range(7):
        ids.append((await c.payments.create(SVC, order(f"b{i}", 1_000 + i, capture=i != 0))).payment_id)
    await c.payments.cancel(SVC, "cancel", ids[0], "changed my mind")
    for i in (1, 2):
        await c.payments.complete(SVC, f"done{i}", ids[i])
    await c.payments.refund(SVC, "refund", ids[3], 300, "JPY", "scratched")
    for i in range(2):
        ids.append((await c.payments.create(SVC, order(f"s{i}", 500, buyer_id=SELLER, seller_id=BUYER))).payment_id)
    await c.payments.create(SVC, order("o", 700, buyer_id=OTHER, seller_id=SELLER))
    key = Forger(kid="k1")
    verifier = TokenVerifier("furima-id", "furima.payments", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = build_server(c, ServerConfig(port=0), verifier)
    await server.start()
    try:
        async with make_channel(server.address, services=[PAYMENT_SERVICE]) as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            probe = Shop(stub, key, {})
            for payment_id in ids:
                got = await stub.GetPayment(pb.GetPaymentRequest(payment_id=payment_id), metadata=probe.token())
                probe.made[payment_id] = got.payment
            yield probe
    finally:
        await server.stop(0)


async def test_pages_cover_every_payment_of_the_user_newest_first(shop: Shop) -> None:
    """Pages of 4 over BUYER's nine payments (either side): 4 + 4 + 1, ids descending, none twice."""
    pages = await shop.every_page(pb.ListPaymentsRequest(user_id=BUYER, page_size=4))
    assert [len(page) for page in pages] == [4, 4, 1]
    listed = [payment_id for page in pages for payment_id in page]
    assert listed == sorted(shop.made, reverse=True)


async def test_listed_payments_are_what_get_payment_shows(shop: Shop) -> None:
    """Funding lines, refunds and statuses come with each listed payment, as GetPayment has them."""
    reply = await shop.stub.ListPayments(pb.ListPaymentsRequest(user_id=BUYER, page_size=50), metadata=shop.token())
    assert {p.payment_id: p for p in reply.payments} == shop.made
    refunded = [p for p in reply.payments if p.refunds]
    assert [(len(p.refunds), p.refunded.amount) for p in refunded] == [(1, 300)]


async def test_role_and_status_filters(shop: Shop) -> None:
    """As buyer 7, as seller 2; CANCELED alone 1; COMPLETED or CANCELED as buyer 3."""

    async def ids(**fields: object) -> list[str]:
        request = pb.ListPaymentsRequest(user_id=BUYER, page_size=50, **fields)  # type: ignore[arg-type]
        return [p.payment_id for p in (await shop.stub.ListPayments(request, metadata=shop.token())).payments]

    bought = await ids(role=pb.PAYMENT_ROLE_BUYER)
    sold = await ids(role=pb.PAYMENT_ROLE_SELLER)
    assert (len(bought), len(sold)) == (7, 2)
    assert all(shop.made[i].buyer_id == BUYER for i in bought)
    assert all(shop.made[i].seller_id == BUYER for i in sold)
    canceled = await ids(statuses=[pb.PAYMENT_STATUS_CANCELED])
    assert [shop.made[i].status for i in canceled] == [pb.PAYMENT_STATUS_CANCELED]
    done_or_canceled = await ids(
        role=pb.PAYMENT_ROLE_BUYER, statuses=[pb.PAYMENT_STATUS_COMPLETED, pb.PAYMENT_STATUS_CANCELED]
    )
    assert sorted(shop.made[i].status for i in done_or_canceled) == [
        pb.PAYMENT_STATUS_COMPLETED,
        pb.PAYMENT_STATUS_COMPLETED,
        pb.PAYMENT_STATUS_CANCELED,
    ]


async def test_a_user_lists_only_their_own_payments(shop: Shop) -> None:
    """BUYER's user token lists BUYER's payments; SELLER's is PERMISSION_DENIED; no token, UNAUTHENTICATED;
    a service token without payments.read, PERMISSION_DENIED.
    """
    own = await shop.stub.ListPayments(pb.ListPaymentsRequest(user_id=BUYER), metadata=shop.token(BUYER))
    assert len(own.payments) == 9

    async def refused(metadata: list[tuple[str, str]] | None) -> tuple[grpc.StatusCode, object]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.stub.ListPayments(pb.ListPaymentsRequest(user_id=SELLER), metadata=metadata)
        return caught.value.code(), error_details(caught.value).get("reason")

    assert await refused(shop.token(BUYER)) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_PAYMENT_PARTY")
    assert (await refused(None))[0] is grpc.StatusCode.UNAUTHENTICATED
    assert (await refused(shop.token(scope="payments.write")))[0] is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("fields", "violation"),
    [
        ({"user_id": "bob"}, "user_id"),
        ({"role": 7}, "role"),
        ({"statuses": [pb.PAYMENT_STATUS_UNSPECIFIED]}, "statuses[0]"),
        ({"page_token": "bm90LW91cnM"}, "page_token"),
        ({"page_token": "WzQyXQ"}, "page_token"),  # [42]: a token, but not of this listing
        ({"page_size": -1}, "page_size"),
    ],
)
async def test_bad_requests_name_the_field(shop: Shop, fields: dict[str, object], violation: str) -> None:
    """Each malformed field is INVALID_ARGUMENT with a violation on it."""
    request = pb.ListPaymentsRequest(**{"user_id": BUYER, **fields})  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListPayments(request, metadata=shop.token())
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = error_details(caught.value)["violations"]
    assert isinstance(violations, dict)
    assert violation in violations
