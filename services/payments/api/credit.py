"""CreditService servicer: limits (admin), a user's line and statements, repayments."""

from __future__ import annotations

from typing import Any

import grpc
from furima.payments.v1 import credit_service_pb2 as pb
from furima.payments.v1 import credit_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.pb import timestamp
from services.payments.api._convert import money, wallet_owner
from services.payments.domain.credit import (
    DEFAULT_CURRENCY,
    CreditLine,
    CreditStatement,
    RepaymentRequest,
    RepaymentSource,
    StatementLineKind,
)
from services.payments.service.credit import CreditLines

Context = grpc.aio.ServicerContext[Any, Any]

CREDIT_SERVICE = pb.DESCRIPTOR.services_by_name["CreditService"]
register_credit = pb_grpc.add_CreditServiceServicer_to_server

_SOURCES = {pb.REPAYMENT_SOURCE_BALANCE: RepaymentSource.BALANCE, pb.REPAYMENT_SOURCE_BANK: RepaymentSource.BANK}
_LINE_KINDS = {
    StatementLineKind.PURCHASE: pb.STATEMENT_LINE_KIND_PURCHASE,
    StatementLineKind.REFUND: pb.STATEMENT_LINE_KIND_REFUND,
    StatementLineKind.REPAYMENT: pb.STATEMENT_LINE_KIND_REPAYMENT,
}


class CreditServicer(pb_grpc.CreditServiceServicer):
    """Pay-later lines: a user token reaches only its own line; services reach any."""

    def __init__(self, lines: CreditLines) -> None:
        self._lines = lines

    async def SetCreditLimit(self, request: pb.SetCreditLimitRequest, context: Context) -> pb.SetCreditLimitResponse:
        """Set a user's limit (refused below what is in use)."""
        user_id = wallet_owner(request.user_id)
        line = await self._lines.set_limit(user_id, request.limit.currency, request.limit.amount)
        return pb.SetCreditLimitResponse(credit_line=line_pb(line))

    async def GetCreditLine(self, request: pb.GetCreditLineRequest, context: Context) -> pb.GetCreditLineResponse:
        """Limit, used and available."""
        user_id = wallet_owner(request.user_id)
        line = await self._lines.line(user_id, request.currency or DEFAULT_CURRENCY)
        return pb.GetCreditLineResponse(credit_line=line_pb(line))

    async def GetCreditStatement(
        self, request: pb.GetCreditStatementRequest, context: Context
    ) -> pb.GetCreditStatementResponse:
        """One calendar month (Asia/Tokyo) of the line."""
        user_id = wallet_owner(request.user_id)
        found = await self._lines.statement(user_id, request.month, request.currency or DEFAULT_CURRENCY)
        return pb.GetCreditStatementResponse(statement=statement_pb(found))

    async def RepayCredit(self, request: pb.RepayCreditRequest, context: Context) -> pb.RepayCreditResponse:
        """Repay from the balance or start a bank repayment; idempotent per key."""
        user_id = wallet_owner(request.user_id)
        done = await self._lines.repay(idempotency_caller(), repayment_request(request, user_id))
        return pb.RepayCreditResponse(
            credit_line=line_pb(done.line), transfer_id=done.transfer_id, bank_transfer_id=done.bank_transfer_id
        )


def idempotency_caller() -> str:
    """Whose keys these are: the calling client, and the user when it acts for one (two
    users of one app may pick the same key).
    """
    caller = current_principal()
    return f"{caller.client_id}/{caller.subject}" if caller.is_user else caller.client_id


def repayment_request(request: pb.RepayCreditRequest, user_id: str) -> RepaymentRequest:
    """The domain request: an unset amount means everything owed (in JPY)."""
    has_amount = request.HasField("amount")
    return RepaymentRequest(
        idempotency_key=request.idempotency_key,
        user_id=user_id,
        amount=request.amount.amount if has_amount else None,
        currency=request.amount.currency if has_amount else DEFAULT_CURRENCY,
        source=_SOURCES.get(request.source),
        bank_account=request.bank_account,
    )


def line_pb(line: CreditLine) -> pb.CreditLine:
    """The CreditLine message."""
    return pb.CreditLine(
        user_id=line.user_id,
        limit=money(line.limit, line.currency),
        used=money(line.used, line.currency),
        available=money(line.available, line.currency),
        updated_at=None if line.updated_at is None else timestamp(line.updated_at),
    )


def statement_pb(found: CreditStatement) -> pb.CreditStatement:
    """The CreditStatement message."""
    cur = found.currency
    return pb.CreditStatement(
        user_id=found.user_id,
        month=found.month,
        opening_owed=money(found.opening_owed, cur),
        purchases=money(found.purchases, cur),
        refunds=money(found.refunds, cur),
        repayments=money(found.repayments, cur),
        closing_owed=money(found.closing_owed, cur),
        due_date=found.due_date.isoformat(),
        lines=[
            pb.StatementLine(
                kind=_LINE_KINDS[line.kind],
                transfer_id=line.transfer_id,
                amount=money(line.amount, cur),
                description=line.description,
                occurred_at=timestamp(line.occurred_at),
            )
            for line in found.lines
        ],
    )
