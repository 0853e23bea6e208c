"""The TnS risk client: concurrent assessments share AssessTransactions calls, a refused or
unsupported batch falls back to one call each, and an outage is one unreachable answer
per payment (the fail-open rule then applies) from a call or two, never a call per payment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from furima.tns.v1 import risk_service_pb2 as pb
from furima.tns.v1 import risk_service_pb2_grpc as pb_grpc

from services.payments.domain.payments import Source
from services.payments.service.risk import RiskQuery, RiskUnreachable, TnsRisk

Context = grpc.aio.ServicerContext[Any, Any]


class FakeRisk(pb_grpc.RiskServiceServicer):
    """A RiskService that approves, declines buyers named ``usr_bad``, refuses batches that
    contain ``usr_invalid`` (as TnS refuses a batch with a reused id), and records the size
    of every call.
    """

    def __init__(self, *, batches: bool = True, hang: bool = False) -> None:
        self.calls: list[int] = []
        self._batches = batches
        self._delay = 30.0 if hang else 0.005  # a little service time, so that callers pile up

    def _assessment(self, t: pb.AssessTransactionRequest) -> pb.RiskAssessment:
        decision = pb.RISK_DECISION_DECLINE if t.buyer_id == "usr_bad" else pb.RISK_DECISION_APPROVE
        return pb.RiskAssessment(
            assessment_id=f"rsk_{t.transaction_id}", transaction_id=t.transaction_id, decision=decision
        )

    async def AssessTransaction(  # noqa: N802 — the gRPC method name
        self, request: pb.AssessTransactionRequest, context: Context
    ) -> pb.AssessTransactionResponse:
        """One at a time."""
        self.calls.append(1)
        await asyncio.sleep(self._delay)
        if request.buyer_id == "usr_invalid":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reused")
        return pb.AssessTransactionResponse(assessment=self._assessment(request))

    async def AssessTransactions(  # noqa: N802 — the gRPC method name
        self, request: pb.AssessTransactionsRequest, context: Context
    ) -> pb.AssessTransactionsResponse:
        """A batch, all or nothing."""
        if not self._batches:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "an older TnS")
        self.calls.append(len(request.transactions))
        await asyncio.sleep(self._delay)
        if any(t.buyer_id == "usr_invalid" for t in request.transactions):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reused")
        return pb.AssessTransactionsResponse(assessments=[self._assessment(t) for t in request.transactions])


async def _serve(servicer: FakeRisk) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    pb_grpc.add_RiskServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@asynccontextmanager
async def _client(servicer: FakeRisk, deadline_s: float = 2.0) -> AsyncIterator[TnsRisk]:
    """``servicer`` on a local port and a client talking to it (``deadline_s`` per call)."""
    server, address = await _serve(servicer)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            yield TnsRisk(channel, timeout=deadline_s)
    finally:
        await server.stop(0)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeRisk, TnsRisk]]:
    """A fake RiskService on a local port and the client talking to it."""
    servicer = FakeRisk()
    async with _client(servicer) as risk:
        yield servicer, risk


def query(n: int, buyer: str = "usr_buyer") -> RiskQuery:
    """A payment's risk query."""
    return RiskQuery(f"pay_{n}", buyer, "usr_seller", 1000, "JPY", Source.CASH)


async def outcomes(risk: TnsRisk, queries: list[RiskQuery]) -> list[object]:
    """Each query's decision (or its exception), asked all at once."""
    answers = await asyncio.gather(*(risk.assess(q) for q in queries), return_exceptions=True)
    return [a if isinstance(a, BaseException) else (a.decision, a.assessment_id) for a in answers]


async def test_concurrent_assessments_share_calls(fake: tuple[FakeRisk, TnsRisk]) -> None:
    """Thirty payments at once: each gets its own assessment, in far fewer calls than payments."""
    servicer, risk = fake
    queries = [query(n, "usr_bad" if n == 7 else "usr_buyer") for n in range(30)]
    answers = await outcomes(risk, queries)
    assert answers == [("DECLINE" if n == 7 else "APPROVE", f"rsk_pay_{n}") for n in range(30)]
    assert sum(servicer.calls) == 30
    assert len(servicer.calls) < 10
    assert max(servicer.calls) > 1


async def test_a_refused_batch_is_asked_one_by_one(fake: tuple[FakeRisk, TnsRisk]) -> None:
    """A batch refused for one payment: the others are assessed alone; that one has no decision."""
    servicer, risk = fake
    await outcomes(risk, [query(100)])  # a call in flight, so the next ones gather
    first = asyncio.ensure_future(risk.assess(query(101)))
    await asyncio.sleep(0)
    rest = [query(n, "usr_invalid" if n == 3 else "usr_buyer") for n in range(5)]
    answers = await outcomes(risk, rest)
    await first
    assert 5 in servicer.calls  # the five went as one batch, refused, then one by one
    assert isinstance(answers[3], RiskUnreachable)
    assert [a for i, a in enumerate(answers) if i != 3] == [("APPROVE", f"rsk_pay_{n}") for n in (0, 1, 2, 4)]


async def test_a_tns_without_the_batch_call_is_asked_one_by_one() -> None:
    """UNIMPLEMENTED for AssessTransactions (an older TnS): every payment still gets its decision."""
    async with _client(FakeRisk(batches=False)) as risk:
        answers = await outcomes(risk, [query(n) for n in range(12)])
    assert answers == [("APPROVE", f"rsk_pay_{n}") for n in range(12)]


async def test_a_tns_too_slow_is_unreachable_for_each_payment_in_one_wait() -> None:
    """TnS answering after the deadline: twenty payments each get RiskUnreachable from a
    couple of calls that timed out together, not from a call (and a wait) per payment.
    """
    servicer = FakeRisk(hang=True)
    async with _client(servicer, deadline_s=0.3) as risk:
        answers = await outcomes(risk, [query(n) for n in range(20)])
    assert all(isinstance(a, RiskUnreachable) for a in answers)
    assert sum(servicer.calls) == 20
    assert len(servicer.calls) <= 3
