"""Idempotent execution: the effect, its idempotency record and its response in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import text

from libs.clock import Clock
from libs.errors import Aborted
from libs.storage import Database, Transaction
from services.payments.domain.idempotency import IdempotencyRecord, replay, retention_until
from services.payments.store import idempotency as idempotency_repo

Effect = Callable[[Transaction], Awaitable[str]]


def _lock_key(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"idempotency\0{scope}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _in_flight(key: str) -> Aborted:
    return Aborted(
        "a request with this idempotency key is still in flight; retry it later",
        reason="IDEMPOTENCY_KEY_IN_FLIGHT",
        metadata={"idempotency_key": key},
    )


class IdempotentCalls:
    """Runs an effect at most once per (scope, key) and replays its response afterwards."""

    def __init__(self, db: Database, clock: Clock, retention: timedelta) -> None:
        self._db = db
        self._clock = clock
        self._retention = retention
        self._running: set[tuple[str, str]] = set()

    async def run(self, scope: str, key: str, fingerprint: str, effect: Effect) -> str:
        """The response of ``effect`` for this key: computed once, replayed after.

        INVALID_ARGUMENT (``IDEMPOTENCY_KEY_REUSED``) when the key was used for a request
        with another fingerprint; ABORTED (``IDEMPOTENCY_KEY_IN_FLIGHT``) while another
        call with the key has not finished.
        """
        # A replay is the common repeat: answer it without taking the write lock.
        async with self._db.read() as conn:
            record = await idempotency_repo.get(conn, scope, key)
        if record is not None:
            return replay(record, fingerprint)
        slot = (scope, key)
        if slot in self._running:
            raise _in_flight(key)
        self._running.add(slot)
        try:
            async with self._db.transaction() as tx:
                # Another process may hold the key (PostgreSQL): refuse rather than wait.
                # SQLite's single writer already serializes processes; the loser then
                # finds the record below and replays.
                if tx.dialect == "postgresql" and not await tx.conn.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(scope, key)}
                ):
                    raise _in_flight(key)
                record = await idempotency_repo.get(tx.conn, scope, key)
                if record is not None:
                    return replay(record, fingerprint)
                response = await effect(tx)
                now = self._clock.now()
                await idempotency_repo.put(
                    tx.conn,
                    IdempotencyRecord(scope, key, fingerprint, response, now, retention_until(now, self._retention)),
                )
                return response
        finally:
            self._running.discard(slot)

    async def purge_expired(self) -> int:
        """Forget the keys whose retention has passed; returns how many."""
        async with self._db.transaction() as tx:
            return await idempotency_repo.purge(tx.conn, self._clock.now())
