"""Risk checks before money is held: TnS AssessTransaction, and what happens when TnS is down."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
import structlog
from furima.tns.v1 import risk_service_pb2 as risk_pb
from furima.tns.v1 import risk_service_pb2_grpc as risk_grpc
from furima.types.v1 import money_pb2

from libs.errors import Unavailable
from libs.storage import Grouped
from services.payments.domain.payments import UNASSESSED, RiskOutcome, Source

log = structlog.get_logger("furima.payments.risk")

_METHODS = {
    Source.POINTS: risk_pb.PAYMENT_METHOD_POINTS,
    Source.CASH: risk_pb.PAYMENT_METHOD_BALANCE,
    Source.CREDIT: risk_pb.PAYMENT_METHOD_CREDIT,
    Source.CARD: risk_pb.PAYMENT_METHOD_CARD,
}
_DECISIONS = {
    risk_pb.RISK_DECISION_APPROVE: "APPROVE",
    risk_pb.RISK_DECISION_REVIEW: "REVIEW",
    risk_pb.RISK_DECISION_DECLINE: "DECLINE",
}


@dataclass(frozen=True)
class RiskQuery:
    """What TnS is asked about a payment."""

    payment_id: str
    buyer_id: str
    seller_id: str
    amount: int
    currency: str
    method: Source
    device_id: str = ""
    ip_address: str = ""


class RiskUnreachable(Exception):
    """TnS could not give an answer (down, too slow, or refusing us)."""


class RiskAssessor(Protocol):
    """Something that assesses a payment's fraud risk."""

    async def assess(self, query: RiskQuery) -> RiskOutcome:
        """The decision; raises RiskUnreachable when there is none."""
        ...


class TnsRisk:
    """TnS RiskService over gRPC, with a deadline per call. Assessments asked while a call
    is in flight go together in the next one (`AssessTransactions`), so concurrent
    payments share calls instead of each paying for its own; a lone one is asked alone.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout: float, *, max_batch: int = 100, linger: float = 0.0) -> None:
        self._stub = risk_grpc.RiskServiceStub(channel)
        self._timeout = timeout
        self._batches: Grouped[RiskQuery, RiskOutcome | RiskUnreachable] = Grouped(
            self._assess_group, max_size=max_batch, linger=linger, name="payments-risk"
        )

    async def assess(self, query: RiskQuery) -> RiskOutcome:
        """Ask TnS (the payment id is its transaction id, so a retry gets the same answer)."""
        outcome = await self._batches.submit(query)
        if isinstance(outcome, RiskUnreachable):
            raise outcome
        return outcome

    async def _assess_group(self, queries: Sequence[RiskQuery]) -> list[RiskOutcome | RiskUnreachable]:
        requests = [_request(q) for q in queries]
        try:
            if len(requests) == 1:
                single = await self._stub.AssessTransaction(requests[0], timeout=self._timeout)
                assessments = [single.assessment]
            else:
                batch = risk_pb.AssessTransactionsRequest(transactions=requests)
                assessments = list((await self._stub.AssessTransactions(batch, timeout=self._timeout)).assessments)
        except grpc.aio.AioRpcError as exc:
            if len(queries) > 1 and exc.code() in _ASK_ALONE:
                # One transaction refused the batch (or TnS predates it): each alone, at once.
                alone = await asyncio.gather(*(self._assess_group([q]) for q in queries))
                return [answers[0] for answers in alone]
            # Whatever the cause (down, slow, misconfigured credentials), there is no decision.
            log.warning("risk assessment failed", payments=len(queries), code=exc.code().name)
            return [RiskUnreachable(exc.code().name) for _ in queries]
        return [_outcome(a) for a in assessments]


# A batch refused for one of its transactions, or by a TnS without the batch call.
_ASK_ALONE = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED})


def _request(query: RiskQuery) -> risk_pb.AssessTransactionRequest:
    return risk_pb.AssessTransactionRequest(
        transaction_id=query.payment_id,
        buyer_id=query.buyer_id,
        seller_id=query.seller_id,
        amount=money_pb2.Money(amount=query.amount, currency=query.currency),
        payment_method=_METHODS[query.method],
        device_id=query.device_id,
        ip_address=query.ip_address,
    )


def _outcome(a: risk_pb.RiskAssessment) -> RiskOutcome | RiskUnreachable:
    decision = _DECISIONS.get(a.decision)
    if decision is None:
        return RiskUnreachable(f"unknown decision {a.decision}")
    return RiskOutcome(decision, a.assessment_id, a.score, tuple(r.code for r in a.reasons))


class NoRisk:
    """No TnS configured: every assessment is unreachable (the fail-open limit applies)."""

    async def assess(self, query: RiskQuery) -> RiskOutcome:
        """Never an answer."""
        raise RiskUnreachable("no risk service configured")


async def assess_or_fail_closed(assessor: RiskAssessor, query: RiskQuery, fail_open_max: int) -> RiskOutcome:
    """TnS's decision; without one, UNASSESSED up to ``fail_open_max`` and UNAVAILABLE
    (reason RISK_UNAVAILABLE, nothing held) above it: money fails closed.
    """
    try:
        return await assessor.assess(query)
    except RiskUnreachable as exc:
        if query.amount <= fail_open_max:
            log.info("payment authorized unassessed", payment_id=query.payment_id, amount=query.amount)
            return UNASSESSED
        raise Unavailable(
            "the risk service cannot be reached; payments above the fail-open limit wait for it",
            reason="RISK_UNAVAILABLE",
            metadata={"fail_open_max": str(fail_open_max), "cause": str(exc)},
        ) from exc
