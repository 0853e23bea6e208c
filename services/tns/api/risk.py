"""RiskService servicer: convert the request, assess, map the assessment back."""

from __future__ import annotations

from typing import Any

import grpc
from furima.tns.v1 import risk_service_pb2 as pb
from furima.tns.v1 import risk_service_pb2_grpc as pb_grpc
from furima.types.v1 import money_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.tns.domain.risk import Decision, PaymentMethod, RiskAssessment, TransactionRequest
from services.tns.service.risk import RiskAssessor

Context = grpc.aio.ServicerContext[Any, Any]

RISK_SERVICE = pb.DESCRIPTOR.services_by_name["RiskService"]
register_risk = pb_grpc.add_RiskServiceServicer_to_server

PAYMENT_METHOD_FROM_PB = {
    pb.PAYMENT_METHOD_BALANCE: PaymentMethod.BALANCE,
    pb.PAYMENT_METHOD_POINTS: PaymentMethod.POINTS,
    pb.PAYMENT_METHOD_CREDIT: PaymentMethod.CREDIT,
    pb.PAYMENT_METHOD_CARD: PaymentMethod.CARD,
    pb.PAYMENT_METHOD_BANK: PaymentMethod.BANK,
}
DECISION_TO_PB = {
    Decision.APPROVE: pb.RISK_DECISION_APPROVE,
    Decision.REVIEW: pb.RISK_DECISION_REVIEW,
    Decision.DECLINE: pb.RISK_DECISION_DECLINE,
}


class RiskServicer(pb_grpc.RiskServiceServicer):
    """Fraud risk of money movements, asked by Payments before it authorizes them."""

    def __init__(self, assessor: RiskAssessor) -> None:
        self._assessor = assessor

    async def AssessTransaction(
        self, request: pb.AssessTransactionRequest, context: Context
    ) -> pb.AssessTransactionResponse:
        """Assess a transaction (the use case validates every field; repeats are idempotent)."""
        assessment = await self._assessor.assess(transaction_request(request))
        return pb.AssessTransactionResponse(assessment=assessment_pb(assessment))

    async def AssessTransactions(
        self, request: pb.AssessTransactionsRequest, context: Context
    ) -> pb.AssessTransactionsResponse:
        """Assess a batch in order, all or nothing."""
        assessed = await self._assessor.assess_many([transaction_request(t) for t in request.transactions])
        return pb.AssessTransactionsResponse(assessments=[assessment_pb(a) for a in assessed])


def transaction_request(request: pb.AssessTransactionRequest) -> TransactionRequest:
    """The domain request; an unset or unknown payment method becomes None (refused by validation)."""
    money: money_pb2.Money = request.amount
    return TransactionRequest(
        transaction_id=request.transaction_id,
        buyer_id=request.buyer_id,
        seller_id=request.seller_id,
        amount=money.amount,
        currency=money.currency,
        payment_method=PAYMENT_METHOD_FROM_PB.get(request.payment_method),
        device_id=request.device_id,
        ip_address=request.ip_address,
    )


def assessment_pb(assessment: RiskAssessment) -> pb.RiskAssessment:
    """The RiskAssessment message."""
    assessed_at = Timestamp()
    assessed_at.FromDatetime(assessment.assessed_at)
    outcome = assessment.outcome
    return pb.RiskAssessment(
        assessment_id=assessment.assessment_id,
        transaction_id=assessment.request.transaction_id,
        score=outcome.score,
        decision=DECISION_TO_PB[outcome.decision],
        reasons=[pb.RiskReason(code=r.code.value, detail=r.detail, points=r.points) for r in outcome.reasons],
        assessed_at=assessed_at,
    )
