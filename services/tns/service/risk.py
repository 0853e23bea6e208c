"""Transaction risk: assess a money movement once per transaction id."""

from __future__ import annotations

from sqlalchemy import Connection

from libs.clock import Clock
from libs.errors import FieldViolation, InvalidArgument, Violations
from libs.ids import new_ulid
from libs.storage import Database
from services.tns.domain.risk import RiskAssessment, RiskPolicy, TransactionRequest, assess, validate_request
from services.tns.store import risk as risk_repo


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
        violations = Violations()
        validate_request(violations, request)
        violations.raise_if_any("the transaction has invalid fields")
        # A retry is the common repeat: answer it without taking the write lock.
        row = await self._db.fetch_one(risk_repo.BY_TRANSACTION, {"transaction_id": request.transaction_id})
        if row is not None:
            return _replay(risk_repo.assessment_of(row), request)

        def decide(conn: Connection) -> RiskAssessment | None:
            # Features are read in the write transaction so that, on SQLite, concurrent
            # assessments of one buyer count each other. On a SQLite file this whole
            # transaction runs inline (no thread hop per statement).
            stored = risk_repo.by_transaction(conn, request.transaction_id)
            if stored is not None:
                return stored
            now = self._clock.now()
            inputs = risk_repo.load_inputs(conn, request, now)
            fresh = RiskAssessment(new_ulid("rsk_"), request, assess(inputs, self._policy), now)
            if risk_repo.add(conn, fresh):
                return fresh
            # A concurrent duplicate committed first (PostgreSQL): its answer stands.
            return risk_repo.by_transaction(conn, request.transaction_id)

        decided = await self._db.write_sync(decide)
        if decided is None:  # pragma: no cover — the unique violation proves the row exists
            raise RuntimeError(f"assessment of {request.transaction_id!r} vanished")
        return _replay(decided, request)


def _replay(stored: RiskAssessment, request: TransactionRequest) -> RiskAssessment:
    """The stored assessment, if ``request`` is the movement it was made for."""
    if not stored.request.same_movement(request):
        raise InvalidArgument(
            "the transaction id was already assessed for a different transaction",
            [FieldViolation("transaction_id", "was already used for a different transaction")],
            reason="TRANSACTION_ID_REUSED",
        )
    return stored
