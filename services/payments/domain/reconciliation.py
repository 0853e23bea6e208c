"""Reconciliation: the ledger's bank-clearing movements against the bank's statement.

Pure matching: the service layer reads the flows, the clearing entries and the
statement, and this module says what agrees and what does not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from services.payments.domain.bank import FINAL, BankTransferStatus, StatementLine


class MismatchKind(StrEnum):
    """How the ledger and the bank disagree about a movement."""

    MISSING_IN_LEDGER = "MISSING_IN_LEDGER"
    MISSING_AT_BANK = "MISSING_AT_BANK"
    AMOUNT_DIFFERS = "AMOUNT_DIFFERS"


@dataclass(frozen=True)
class FlowRecord:
    """What reconciliation needs to know of a flow."""

    bank_transfer_id: str
    status: BankTransferStatus
    bank_reference: str | None
    ledger_transfer_id: str | None


@dataclass(frozen=True)
class ClearingMovement:
    """The bank-clearing entries of one ledger transfer, summed (``reverses``: the transfer
    it reverses, if it is a reversal).
    """

    transfer_id: str
    reverses: str | None
    currency: str
    clearing_sum: int


@dataclass(frozen=True)
class Mismatch:
    """One disagreement. Amounts are signed from the platform's point of view (money in
    positive); the side that has nothing shows 0.
    """

    kind: MismatchKind
    bank_reference: str
    bank_transfer_id: str
    ledger_transfer_id: str
    ledger_amount: int
    bank_amount: int
    currency: str


@dataclass(frozen=True)
class ReconciliationReport:
    """Every mismatch, how many movements matched, how many flows are still in flight."""

    mismatches: tuple[Mismatch, ...]
    matched: int
    in_flight: int

    @property
    def consistent(self) -> bool:
        """No mismatch (flows in flight are not mismatches)."""
        return not self.mismatches


@dataclass
class _Side:
    amount: int
    currency: str
    transfer_id: str = ""


def reconcile(
    flows: Iterable[FlowRecord], movements: Iterable[ClearingMovement], statement: Iterable[StatementLine]
) -> ReconciliationReport:
    """Match the ledger's bank-clearing movements with the bank's statement by reference.

    A completed flow must appear on both sides with one amount; a flow in flight may
    appear at the bank already and is counted apart; a bank line without a completed
    flow is MISSING_IN_LEDGER; a clearing movement no flow explains is MISSING_AT_BANK.
    A reversal of a flow's posting counts towards that flow.
    """
    by_id = {f.bank_transfer_id: f for f in flows}
    by_posting = {f.ledger_transfer_id: f.bank_transfer_id for f in by_id.values() if f.ledger_transfer_id}
    ledger: dict[str, _Side] = {}
    unexplained: list[Mismatch] = []
    for m in movements:
        flow_id = by_posting.get(m.transfer_id) or (by_posting.get(m.reverses) if m.reverses else None)
        if flow_id is None:
            unexplained.append(
                Mismatch(MismatchKind.MISSING_AT_BANK, "", "", m.transfer_id, -m.clearing_sum, 0, m.currency)
            )
            continue
        side = ledger.setdefault(flow_id, _Side(0, m.currency, by_id[flow_id].ledger_transfer_id or ""))
        side.amount -= m.clearing_sum
    bank: dict[str, _Side] = {}
    bank_refs: dict[str, str] = defaultdict(str)
    for line in statement:
        side = bank.setdefault(line.reference, _Side(0, line.currency))
        side.amount += line.platform_amount
        bank_refs[line.reference] = bank_refs[line.reference] or line.bank_reference
    mismatches, matched, in_flight = list(unexplained), 0, 0
    for flow_id in sorted(by_id.keys() | bank.keys() | ledger.keys()):
        flow = by_id.get(flow_id)
        if flow is not None and flow.status not in FINAL:
            in_flight += 1
            continue
        ours, theirs = ledger.get(flow_id), bank.get(flow_id)
        if ours is None and theirs is None:
            continue  # reverted before the bank applied anything: nothing to match
        if ours is not None and theirs is not None and (ours.amount, ours.currency) == (theirs.amount, theirs.currency):
            matched += 1
            continue
        bank_reference = bank_refs.get(flow_id) or (flow.bank_reference if flow else None) or ""
        mismatches.append(_mismatch(flow_id, bank_reference, ours, theirs))
    return ReconciliationReport(tuple(mismatches), matched, in_flight)


def _mismatch(flow_id: str, bank_reference: str, ours: _Side | None, theirs: _Side | None) -> Mismatch:
    if theirs is None:
        kind = MismatchKind.MISSING_AT_BANK
    elif ours is None:
        kind = MismatchKind.MISSING_IN_LEDGER
    else:
        kind = MismatchKind.AMOUNT_DIFFERS
    either = ours or theirs
    assert either is not None
    return Mismatch(
        kind,
        bank_reference,
        flow_id,
        ours.transfer_id if ours else "",
        ours.amount if ours else 0,
        theirs.amount if theirs else 0,
        either.currency,
    )
