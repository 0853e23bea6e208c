"""WalletService servicer: balances and history of one user's wallet."""

from __future__ import annotations

from typing import Any

import grpc
from furima.payments.v1 import wallet_service_pb2 as pb
from furima.payments.v1 import wallet_service_pb2_grpc as pb_grpc

from libs.errors import FieldViolation, InvalidArgument
from libs.pb import decode_page_token, next_page, page_size, timestamp
from services.payments.api._convert import bucket_pb, money, wallet_owner
from services.payments.service.wallet import Wallet

Context = grpc.aio.ServicerContext[Any, Any]

WALLET_SERVICE = pb.DESCRIPTOR.services_by_name["WalletService"]
register_wallet = pb_grpc.add_WalletServiceServicer_to_server


class WalletServicer(pb_grpc.WalletServiceServicer):
    """A user's own view of their money (services may read any wallet)."""

    def __init__(self, wallet: Wallet) -> None:
        self._wallet = wallet

    async def GetBalance(self, request: pb.GetBalanceRequest, context: Context) -> pb.GetBalanceResponse:
        """Balances per bucket and the unspent points lots."""
        found = await self._wallet.balance(wallet_owner(request.user_id))
        return pb.GetBalanceResponse(
            user_id=found.user_id,
            frozen=found.frozen,
            balances=[
                pb.BucketBalance(bucket=bucket_pb(b.kind), balance=money(b.balance, b.currency)) for b in found.balances
            ],
            points_lots=[
                pb.PointsLot(
                    lot_id=lot.lot_id,
                    granted=money(lot.granted, lot.currency),
                    remaining=money(lot.remaining, lot.currency),
                    expires_at=timestamp(lot.expires_at),
                    campaign_id=lot.campaign_id,
                )
                for lot in found.points_lots
            ],
        )

    async def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: Context
    ) -> pb.ListTransactionsResponse:
        """One page of the history, newest first."""
        user_id = wallet_owner(request.user_id)
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token)
        before: int | None = None
        if cursor is not None:
            if len(cursor) != 1 or not isinstance(cursor[0], int):
                raise InvalidArgument(
                    "page_token is not valid", [FieldViolation("page_token", "not a token we issued")]
                )
            before = cursor[0]
        lines = await self._wallet.history(user_id, before, size + 1)
        page, token = next_page(lines, size, lambda line: line.entry_id)
        return pb.ListTransactionsResponse(
            transactions=[
                pb.WalletTransaction(
                    entry_id=str(line.entry_id),
                    transfer_id=line.transfer_id,
                    kind=line.kind,
                    bucket=bucket_pb(line.account_kind),
                    amount=money(line.amount, line.currency),
                    occurred_at=timestamp(line.occurred_at),
                    description=line.description,
                )
                for line in page
            ],
            next_page_token=token,
        )
