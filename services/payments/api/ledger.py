"""LedgerService servicer: verification of the whole ledger."""

from __future__ import annotations

from typing import Any

import grpc
from furima.payments.v1 import ledger_service_pb2 as pb
from furima.payments.v1 import ledger_service_pb2_grpc as pb_grpc

from services.payments.api._convert import money
from services.payments.service.ledger import Ledger

Context = grpc.aio.ServicerContext[Any, Any]

LEDGER_SERVICE = pb.DESCRIPTOR.services_by_name["LedgerService"]
register_ledger = pb_grpc.add_LedgerServiceServicer_to_server


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    """Operators' view of the ledger's integrity."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def VerifyLedger(self, request: pb.VerifyLedgerRequest, context: Context) -> pb.VerifyLedgerResponse:
        """Recompute balances from entries and report what does not add up."""
        found = await self._ledger.verify()
        return pb.VerifyLedgerResponse(
            consistent=found.consistent,
            discrepancies=[
                pb.BalanceDiscrepancy(
                    account_id=d.account_id, stored=money(d.stored, d.currency), computed=money(d.computed, d.currency)
                )
                for d in found.discrepancies
            ],
            unbalanced_transfers=[
                pb.UnbalancedTransfer(transfer_id=t, sum=money(s, c)) for t, c, s in found.unbalanced_transfers
            ],
            currency_sums=[money(s, c) for c, s in found.currency_sums],
            accounts_checked=found.accounts_checked,
            entries_checked=found.entries_checked,
        )
