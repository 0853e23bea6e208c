"""Transaction risk: assess a money movement once per transaction id."""

from __future__ import annotations

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
        async with self._db.read() as conn:
            stored = await risk_repo.by_transaction(conn, request.transaction_id)
        if stored is not None:
            return _replay(stored, request)
        async with self._db.transaction() as tx:
            # Features are read in the write transaction so that, on SQLite, concurrent
            # assessments of one buyer count each other.
            stored = await risk_repo.by_transaction(tx.conn, request.transaction_id)
            if stored is None:
                now = self._clock.now()
                inputs = await risk_repo.load_inputs(tx.conn, request, now)
                fresh = RiskAssessment(new_ulid("rsk_"), request, assess(inputs, self._policy), now)
                if await risk_repo.add(tx.conn, fresh):
                    return fresh
                # A concurrent duplicate committed first (PostgreSQL): its answer stands.
                stored = await risk_repo.by_transaction(tx.conn, request.transaction_id)
        if stored is None:  # pragma: no cover — the unique violation proves the row exists
            raise RuntimeError(f"assessment of {request.transaction_id!r} vanished")
        return _replay(stored, request)


def _replay(stored: RiskAssessment, request: TransactionRequest) -> RiskAssessment:
    """The stored assessment, if ``request`` is the movement it was made for."""
    if not stored.request.same_movement(request):
        raise InvalidArgument(
            "the transaction id was already assessed for a different transaction",
            [FieldViolation("transaction_id", "was already used for a different transaction")],
            reason="TRANSACTION_ID_REUSED",
        )
    return stored
