"""Transaction risk: assess a money movement once per transaction id."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from libs.clock import Clock
from libs.errors import FieldViolation, InvalidArgument, Violations
from libs.ids import new_ulid
from libs.storage import Database
from services.tns.domain.risk import RiskAssessment, RiskPolicy, TransactionRequest, assess, validate_request
from services.tns.store import risk as risk_repo

MAX_BATCH = 100
"""Transactions in one AssessTransactions call at most."""


class RiskAssessor:
    """Scores transactions before Payments moves money; the first assessment of a
    transaction id is the answer for good.
    """

    def __init__(self, db: Database, clock: Clock, policy: RiskPolicy | None = None) -> None:
        self._db = db
        self._clock = clock
        self._policy = policy or RiskPolicy()

    async def assess(self, request: TransactionRequest) -> RiskAssessment:
        """Assess ``request``, or return the stored assessment of its transaction id.

        INVALID_ARGUMENT with field violations for a malformed request, and with reason
        TRANSACTION_ID_REUSED when the id was assessed for a different movement.
        """
        return (await self._assess([request], [""]))[0]

    async def assess_many(self, requests: Sequence[TransactionRequest]) -> list[RiskAssessment]:
        """`assess` for 1 to `MAX_BATCH` requests, in order, in one transaction: all or
        nothing, violations named ``transactions[i].<field>``. Each is assessed after the
        ones before it, so they count in each other's velocity.
        """
        if not 1 <= len(requests) <= MAX_BATCH:
            raise InvalidArgument(
                f"a batch holds 1 to {MAX_BATCH} transactions",
                [FieldViolation("transactions", f"1 to {MAX_BATCH} transactions, got {len(requests)}")],
            )
        return await self._assess(requests, [f"transactions[{i}]." for i in range(len(requests))])

    async def _assess(self, requests: Sequence[TransactionRequest], paths: Sequence[str]) -> list[RiskAssessment]:
        violations = Violations()
        for request, path in zip(requests, paths, strict=True):
            found = Violations()
            validate_request(found, request)
            violations.items.extend(FieldViolation(path + v.field, v.description) for v in found.items)
        ids = [r.transaction_id for r in requests]
        for i, transaction_id in enumerate(ids):
            if transaction_id in ids[:i]:
                violations.add(f"{paths[i]}transaction_id", "appears twice in the batch")
        violations.raise_if_any("the transaction has invalid fields")
        if len(requests) == 1:
            # A retry is the common repeat: answer it without taking the write lock.
            row = await self._db.fetch_one(risk_repo.BY_TRANSACTION, {"transaction_id": ids[0]})
            if row is not None:
                return [_replay(risk_repo.assessment_of(row), requests[0], paths[0])]

        def decide(conn: Connection) -> list[RiskAssessment]:
            # Features are read in the write transaction so that, on SQLite, concurrent
            # assessments of one buyer count each other (and the batch's earlier ones). On
            # a SQLite file this whole transaction runs inline (no thread hop per statement).
            decided = []
            for request, path in zip(requests, paths, strict=True):
                stored = risk_repo.by_transaction(conn, request.transaction_id)
                if stored is None:
                    now = self._clock.now()
                    inputs = risk_repo.load_inputs(conn, request, now)
                    fresh = RiskAssessment(new_ulid("rsk_"), request, assess(inputs, self._policy), now)
                    # Not added: a concurrent duplicate committed first (PostgreSQL); its answer stands.
                    added = risk_repo.add(conn, fresh)
                    stored = fresh if added else risk_repo.by_transaction(conn, request.transaction_id)
                if stored is None:  # pragma: no cover — the unique violation proves the row exists
                    raise RuntimeError(f"assessment of {request.transaction_id!r} vanished")
                # A reused id refuses the whole batch: the transaction rolls back.
                decided.append(_replay(stored, request, path))
            return decided

        return await self._db.write_sync(decide)


def _replay(stored: RiskAssessment, request: TransactionRequest, path: str) -> RiskAssessment:
    """The stored assessment, if ``request`` is the movement it was made for."""
    if not stored.request.same_movement(request):
        raise InvalidArgument(
            "the transaction id was already assessed for a different transaction",
            [FieldViolation(f"{path}transaction_id", "was already used for a different transaction")],
            reason="TRANSACTION_ID_REUSED",
        )
    return stored
