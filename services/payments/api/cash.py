"""CashService servicer: bank top-ups, withdrawals, their progress, and reconciliation."""

from __future__ import annotations

from typing import Any

import grpc
from furima.payments.v1 import cash_service_pb2 as pb
from furima.payments.v1 import cash_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import PermissionDenied, Violations
from libs.pb import after_id, next_page, page_size, timestamp
from services.payments.api._convert import enum_filter, money
from services.payments.domain.accounts import check_user_id
from services.payments.domain.bank import BankTransfer, BankTransferKind, BankTransferStatus, CashRequest
from services.payments.domain.reconciliation import ReconciliationReport
from services.payments.service.cash import CashFlows
from services.payments.service.reconciliation import Reconciler

Context = grpc.aio.ServicerContext[Any, Any]

CASH_SERVICE = pb.DESCRIPTOR.services_by_name["CashService"]
register_cash = pb_grpc.add_CashServiceServicer_to_server

KIND_TO_PB = {
    BankTransferKind.TOP_UP: pb.BANK_TRANSFER_KIND_TOP_UP,
    BankTransferKind.WITHDRAWAL: pb.BANK_TRANSFER_KIND_WITHDRAWAL,
    BankTransferKind.CREDIT_REPAYMENT: pb.BANK_TRANSFER_KIND_CREDIT_REPAYMENT,
}
STATUS_TO_PB = {
    BankTransferStatus.PENDING: pb.BANK_TRANSFER_STATUS_PENDING,
    BankTransferStatus.CONFIRMED: pb.BANK_TRANSFER_STATUS_CONFIRMED,
    BankTransferStatus.COMPLETED: pb.BANK_TRANSFER_STATUS_COMPLETED,
    BankTransferStatus.REVERTED: pb.BANK_TRANSFER_STATUS_REVERTED,
}
KIND_OF_PB = {value: kind for kind, value in KIND_TO_PB.items()}
STATUS_OF_PB = {value: status for status, value in STATUS_TO_PB.items()}


class CashServicer(pb_grpc.CashServiceServicer):
    """Money between users' bank accounts and their wallets."""

    def __init__(self, flows: CashFlows, reconciler: Reconciler) -> None:
        self._flows = flows
        self._reconciler = reconciler

    async def TopUp(self, request: pb.TopUpRequest, context: Context) -> pb.TopUpResponse:
        """Start (or replay) a top-up; keys are scoped to the calling client."""
        acting_for(request.user_id)
        flow = await self._flows.top_up(current_principal().client_id, cash_request(request))
        return pb.TopUpResponse(bank_transfer=bank_transfer_pb(flow))

    async def Withdraw(self, request: pb.WithdrawRequest, context: Context) -> pb.WithdrawResponse:
        """Start (or replay) a withdrawal of sales proceeds."""
        acting_for(request.user_id)
        flow = await self._flows.withdraw(current_principal().client_id, cash_request(request))
        return pb.WithdrawResponse(bank_transfer=bank_transfer_pb(flow))

    async def GetBankTransfer(self, request: pb.GetBankTransferRequest, context: Context) -> pb.GetBankTransferResponse:
        """One flow; a user token sees only its own."""
        problems = Violations()
        problems.require(request.bank_transfer_id, "bank_transfer_id")
        problems.raise_if_any()
        flow = await self._flows.get(request.bank_transfer_id)
        acting_for(flow.user_id)
        return pb.GetBankTransferResponse(bank_transfer=bank_transfer_pb(flow))

    async def ListBankTransfers(
        self, request: pb.ListBankTransfersRequest, context: Context
    ) -> pb.ListBankTransfersResponse:
        """One page of a user's flows, newest first."""
        problems = Violations()
        check_user_id(problems, request.user_id)
        kinds = enum_filter(problems, "kinds", request.kinds, KIND_OF_PB)
        statuses = enum_filter(problems, "statuses", request.statuses, STATUS_OF_PB)
        problems.raise_if_any()
        size = page_size(request.page_size)
        before = after_id(request.page_token)
        acting_for(request.user_id)
        found = await self._flows.of_user(
            request.user_id, kinds=kinds, statuses=statuses, before=before, limit=size + 1
        )
        page, token = next_page(found, size, lambda flow: flow.bank_transfer_id)
        return pb.ListBankTransfersResponse(
            bank_transfers=[bank_transfer_pb(flow) for flow in page], next_page_token=token
        )

    async def ReconcileBank(self, request: pb.ReconcileBankRequest, context: Context) -> pb.ReconcileBankResponse:
        """The ledger against the bank's statement."""
        return reconciliation_pb(await self._reconciler.reconcile())


def acting_for(user_id: str) -> None:
    """A user token may move or read only its own money (services with the scope act for any
    user); PERMISSION_DENIED, reason NOT_WALLET_OWNER, otherwise.
    """
    caller = current_principal()
    if caller.is_user and caller.subject != user_id:
        raise PermissionDenied("a user may act only on their own wallet", reason="NOT_WALLET_OWNER")


def cash_request(request: pb.TopUpRequest | pb.WithdrawRequest) -> CashRequest:
    """The domain request of a TopUp or Withdraw."""
    return CashRequest(
        idempotency_key=request.idempotency_key,
        user_id=request.user_id,
        amount=request.amount.amount,
        currency=request.amount.currency,
        bank_account=request.bank_account,
    )


def bank_transfer_pb(flow: BankTransfer) -> pb.BankTransfer:
    """The BankTransfer message (the fee only for withdrawals)."""
    return pb.BankTransfer(
        bank_transfer_id=flow.bank_transfer_id,
        kind=KIND_TO_PB[flow.kind],
        status=STATUS_TO_PB[flow.status],
        user_id=flow.user_id,
        amount=money(flow.amount, flow.currency),
        fee=money(flow.fee, flow.currency) if flow.kind is BankTransferKind.WITHDRAWAL else None,
        bank_account=flow.bank_account,
        bank_reference=flow.bank_reference or "",
        failure_reason=flow.failure_reason,
        attempts=flow.attempts,
        created_at=timestamp(flow.created_at),
        updated_at=timestamp(flow.updated_at),
    )


def reconciliation_pb(report: ReconciliationReport) -> pb.ReconcileBankResponse:
    """The ReconcileBankResponse message."""
    return pb.ReconcileBankResponse(
        consistent=report.consistent,
        mismatches=[
            pb.BankMismatch(
                kind=m.kind.value,
                bank_reference=m.bank_reference,
                bank_transfer_id=m.bank_transfer_id,
                ledger_amount=m.ledger_amount,
                bank_amount=m.bank_amount,
                currency=m.currency,
            )
            for m in report.mismatches
        ],
        matched=report.matched,
        in_flight=report.in_flight,
    )
