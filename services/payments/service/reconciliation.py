"""Reconciling the ledger with the bank: read both sides, let the domain match them."""

from __future__ import annotations

from libs.storage import Database
from services.payments.domain.reconciliation import ReconciliationReport, reconcile
from services.payments.service.bank_gateway import BankGateway
from services.payments.store import bank_transfers as flows_repo


class Reconciler:
    """Compares the ledger's bank-clearing movements with the bank's statement. Read-only."""

    def __init__(self, db: Database, bank: BankGateway) -> None:
        self._db = db
        self._bank = bank

    async def reconcile(self) -> ReconciliationReport:
        """Every mismatch between the two sides, the matched movements, the flows in flight.

        The ledger is read first, in one snapshot, then the statement: a flow completed in
        that snapshot was applied at the bank before, so it is on the statement read after
        (the other order would report a flow completing in between as missing at the bank).
        """
        async with self._db.read() as conn:
            flows = await flows_repo.flow_records(conn)
            movements = await flows_repo.clearing_movements(conn)
        statement = await self._bank.statement()
        return reconcile(flows, movements, statement)
