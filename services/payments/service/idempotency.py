"""Idempotent execution: the effect, its idempotency record and its response in one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, bindparam, select, text

from libs.clock import Clock
from libs.errors import Aborted, DomainError
from libs.storage import Database, Grouped, Transaction, gather_late, late_steps, retry_conflicts, settle_late
from services.payments.domain.idempotency import IdempotencyRecord, replay, retention_until, stored_response
from services.payments.store import accounts as accounts_repo
from services.payments.store import frozen as frozen_repo
from services.payments.store import idempotency as idempotency_repo
from services.payments.store.tables import idempotency_keys

Effect = Callable[[Transaction], Awaitable[str]]
SyncEffect = Callable[[Connection], str]
# Reads, for a group, the rows its calls will lock (by key), locking them in key order.
ReadAhead = Callable[[Connection, Sequence[str]], Mapping[str, object]]
_READ_AHEAD = "furima_read_ahead"


_k = idempotency_keys.c
_OF_KEY = (_k.scope == bindparam("scope"), _k.key == bindparam("key"))
_STORED = select(_k.request_hash, _k.response).where(*_OF_KEY)
# The same lookup as two scalar subqueries, for a caller's own first read (`claim`'s ``found``).
FOUND_COLUMNS = (
    select(_k.request_hash).where(*_OF_KEY).scalar_subquery().label("found_request_hash"),
    select(_k.response).where(*_OF_KEY).scalar_subquery().label("found_response"),
)
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")


def _lock_key(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"idempotency\0{scope}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class _Commit:
    """One call's effect waiting for a shared transaction."""

    scope: str
    key: str
    fingerprint: str
    effect: SyncEffect
    ahead: tuple[ReadAhead, str] | None = None
    """A row the effect will lock, which its group may read ahead (see `run_once`)."""


# Whether a call's transaction holds its key (PostgreSQL's advisory lock; always on
# SQLite) and the key's record, if any.
_LookedUp = tuple[bool, IdempotencyRecord | None]
# What a call's effect came to in a shared transaction: its response and whether it is
# new, or the error it raised (its savepoint rolled back; the others still commit).
_Outcome = tuple[str, bool] | DomainError
# Calls committed together at most; a group runs inline on the event loop on SQLite.
GROUP_COMMIT_MAX = 64
# After a refused call, this many groups give each call a savepoint.
CAREFUL_GROUPS = 20
# Groups in flight at once on PostgreSQL: while one waits for the database, another runs.
POSTGRES_GROUPS_AT_ONCE = 2


def _in_flight(key: str) -> Aborted:
    return Aborted(
        "a request with this idempotency key is still in flight; retry it later",
        reason="IDEMPOTENCY_KEY_IN_FLIGHT",
        metadata={"idempotency_key": key},
    )


class IdempotentCalls:
    """Runs an effect at most once per (scope, key) and replays its response afterwards.

    INVALID_ARGUMENT (``IDEMPOTENCY_KEY_REUSED``) when the key was used for a request with
    another fingerprint; ABORTED (``IDEMPOTENCY_KEY_IN_FLIGHT``) while another call with
    the key has not finished. In one process an in-memory set of running keys answers
    "in flight"; across processes on PostgreSQL a transaction-scoped advisory lock on the
    key does (refusing rather than waiting). SQLite's single writer serializes processes:
    the loser finds the record inside its transaction and replays.
    """

    def __init__(self, db: Database, clock: Clock, retention: timedelta, *, linger: float = 0.0) -> None:
        self._db = db
        self._clock = clock
        self._retention = retention
        self._running: set[tuple[str, str]] = set()
        # Groups still to run with a savepoint per call (see `_commit`).
        self._careful_groups = 0
        # Concurrent calls share write transactions (see `_commit`).
        self._group: Grouped[_Commit, _Outcome] = Grouped(
            self._commit_group,
            self._commit_alone,
            max_size=GROUP_COMMIT_MAX,
            settle=8,
            linger=linger,
            in_flight=self.in_flight,
            parallel=self._groups_at_once,
            name="payments-commit",
        )

    async def run(self, scope: str, key: str, fingerprint: str, effect: Effect) -> str:
        """The response of the async ``effect`` for this key: computed once, replayed after."""
        stored = await self._stored(scope, key, fingerprint)
        if stored is not None:
            return stored
        with self._slot(scope, key):
            async with self._db.transaction() as tx:
                if tx.dialect == "postgresql" and not await tx.conn.scalar(_TRY_LOCK, {"k": _lock_key(scope, key)}):
                    raise _in_flight(key)
                record = await tx.conn.run_sync(idempotency_repo.get, scope, key)
                if record is not None:
                    return replay(record, fingerprint)
                response = await effect(tx)
                await tx.conn.run_sync(self._remember, scope, key, fingerprint, response)
                return response

    async def run_sync(self, scope: str, key: str, fingerprint: str, effect: SyncEffect) -> str:
        """Like `run` for an effect on a synchronous connection (`Database.write_sync`: on
        a SQLite file the whole transaction runs inline, with no thread hops).
        """
        response, _ = await self.run_once(scope, key, fingerprint, effect)
        return response

    async def run_once(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        effect: SyncEffect,
        *,
        read_ahead: tuple[ReadAhead, str] | None = None,
    ) -> tuple[str, bool]:
        """`run_sync`, also saying whether the effect ran now (True) or was replayed.

        On SQLite the key is looked up first, without the writer; on PostgreSQL only
        inside the transaction, where it is looked up anyway: a read before it would be
        one more connection checkout and round trip for every call that is not a replay.

        ``read_ahead`` names a row the effect will lock, (reader, key): on PostgreSQL, when
        several calls of a group name rows of one reader, the group reads and locks them
        all in one statement before the calls run, and the effect takes its row with
        `read_earlier` (on SQLite a read costs microseconds and there are no row locks to
        order: each effect reads its own).
        """
        if self._db.dialect == "postgresql":
            with self._slot(scope, key):
                return await self._commit(scope, key, fingerprint, effect, read_ahead)
        async with self.claim(scope, key, fingerprint) as claim:
            if claim.stored is not None:
                return claim.stored, False
            return await claim.commit(effect)

    @asynccontextmanager
    async def claim(
        self, scope: str, key: str, fingerprint: str, *, found: tuple[str | None, str | None] | None = None
    ) -> AsyncIterator[Claim]:
        """Hold ``key`` in this process for a call that does work before its transaction
        (a risk check, a card authorization): ``claim.stored`` is the earlier response, if
        any; otherwise do the work and ``await claim.commit(effect)``. ``found`` is the
        key's stored (request hash, response), or (None, None), when the caller read it
        with its own first query (`FOUND_COLUMNS`); otherwise it is read here.
        """
        if found is None:
            stored = await self._stored(scope, key, fingerprint)
        else:
            request_hash, response = found
            stored = None if response is None else stored_response(str(request_hash), response, fingerprint)
        if stored is not None:
            yield Claim(self, scope, key, fingerprint, stored)
            return
        with self._slot(scope, key):
            yield Claim(self, scope, key, fingerprint, None)

    async def _commit(
        self, scope: str, key: str, fingerprint: str, effect: SyncEffect, ahead: tuple[ReadAhead, str] | None = None
    ) -> tuple[str, bool]:
        """The effect, its idempotency record and its response in one transaction.

        Group commit: the calls that reach their transaction together share one. BEGIN,
        COMMIT, the connection checkout, and the statements writing the calls'
        idempotency records, events and (on PostgreSQL) balance moves (`gather_late`)
        are paid once per group. A group that fails as a whole (a refused call, a
        deadlock, a duplicate key from another process) runs again call by call, so every
        call gets exactly its own answer and nothing of a refused one is kept. Refusals
        (not enough money, an illegal transition) are rare, so a group runs without
        savepoints, which cost two round trips per call on PostgreSQL; once a call was
        refused (in a group or alone), the next `CAREFUL_GROUPS` give each call a
        savepoint, so that a refused call undoes only itself while the others commit.

        On SQLite one group runs at a time (one writer). On PostgreSQL up to
        `POSTGRES_GROUPS_AT_ONCE` do: a group's balance moves are one statement that locks
        its accounts in id order, so two groups never deadlock on those, and the hot rows
        (a seller's proceeds, escrow) are held for that statement, the events and the
        commit only. A call that reads balances mid-group (a credit split, a repayment)
        locks its rows earlier, out of that order: two groups can then deadlock, and
        PostgreSQL breaks it after its deadlock_timeout (the group reruns call by call).
        Careful groups move each call's balances in its savepoint, in no one order, and
        run one at a time.
        """
        if self._db.in_transaction():
            # The group needs the writer this task holds: it would wait forever.
            raise RuntimeError("an idempotent call committed inside a transaction would wait for itself")
        outcome = await self._group.submit(_Commit(scope, key, fingerprint, effect, ahead))
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    def in_flight(self) -> int:
        """How many calls hold a key in this process now (between their start and answer)."""
        return len(self._running)

    def _groups_at_once(self) -> int:
        # SQLite has one writer; savepoint groups move balances call by call, in no one order.
        if self._db.dialect != "postgresql" or self._careful_groups:
            return 1
        return POSTGRES_GROUPS_AT_ONCE

    def _apply(
        self, conn: Connection, call: _Commit, looked_up: _LookedUp | None = None, *, own_moves: bool = False
    ) -> tuple[str, bool]:
        if looked_up is None:
            # Another process may hold the key (PostgreSQL): refuse rather than wait.
            locked = conn.dialect.name != "postgresql" or conn.scalar(_TRY_LOCK, {"k": _lock_key(call.scope, call.key)})
            looked_up = bool(locked), idempotency_repo.get(conn, call.scope, call.key) if locked else None
        locked, record = looked_up
        if not locked:
            raise _in_flight(call.key)
        if record is not None:
            return replay(record, call.fingerprint), False
        # The record, balance moves and event are gathered, written at the end of the
        # call's unit or of its group's (see libs.storage.late_steps).
        with late_steps(conn):
            response = call.effect(conn)
            self._remember(conn, call.scope, call.key, call.fingerprint, response)
            if own_moves:
                # What may refuse the call is settled inside its savepoint: the frozen
                # check of its payers, then its balance moves (see `_apply_in_savepoint`).
                settle_late(conn, frozen_repo.PENDING_CHECKS)
                accounts_repo.settle_moves(conn)
        return response, True

    async def _commit_alone(self, call: _Commit) -> tuple[str, bool]:
        try:
            # A deadlock or serialization failure rolled everything back: run it again.
            return await retry_conflicts(lambda: self._db.write_sync(lambda conn: self._apply(conn, call)))
        except DomainError:
            # Calls are being refused: give the next groups a savepoint per call.
            self._careful_groups = CAREFUL_GROUPS
            raise

    async def _commit_group(self, calls: Sequence[_Commit]) -> list[_Outcome]:
        careful = self._careful_groups > 0
        if careful:
            self._careful_groups -= 1

        def body(conn: Connection) -> list[_Outcome]:
            # The group's unit: its calls' records and events are written once each, at
            # its end (and on PostgreSQL its balance moves, unless careful).
            with late_steps(conn):
                if careful:
                    with _read_ahead(conn, calls):
                        return [self._apply_in_savepoint(conn, call) for call in calls]
                looked_up: list[_LookedUp | None] = [None] * len(calls)
                if conn.dialect.name == "postgresql":
                    # Every call's lock and record in one round trip instead of two each.
                    wanted = [(c.scope, c.key, _lock_key(c.scope, c.key)) for c in calls]
                    looked_up = list(idempotency_repo.lock_and_get(conn, wanted))
                with _read_ahead(conn, calls):
                    return [self._apply(conn, call, found) for call, found in zip(calls, looked_up, strict=True)]

        # A refusal fails the group; its calls then run alone (`_commit_alone`), where the
        # refused one makes the next groups careful.
        return await self._db.write_sync(body)

    def _apply_in_savepoint(self, conn: Connection, call: _Commit) -> _Outcome:
        """A call of a careful group: a refusal undoes only its savepoint. Its key is
        looked up after its lock (`lock_and_get`'s older snapshot could miss a record
        committed meanwhile, and the effect would then refuse where it must replay), and
        its balance moves go within its savepoint: a later call's balance read would
        otherwise have to apply them inside its own savepoint, which could lose them.
        """
        try:
            with conn.begin_nested():
                return self._apply(conn, call, own_moves=True)
        except DomainError as exc:
            return exc

    async def _stored(self, scope: str, key: str, fingerprint: str) -> str | None:
        # A replay is the common repeat: answer it without taking the write lock.
        row = await self._db.fetch_one(_STORED, {"scope": scope, "key": key})
        return None if row is None else stored_response(row.request_hash, row.response, fingerprint)

    def _slot(self, scope: str, key: str) -> _Running:
        return _Running(self._running, (scope, key))

    def _remember(self, conn: Connection, scope: str, key: str, fingerprint: str, response: str) -> None:
        now = self._clock.now()
        record = IdempotencyRecord(scope, key, fingerprint, response, now, retention_until(now, self._retention))
        # Nobody reads a record back in its own transaction: a group writes its calls' at once.
        gather_late(conn, "idempotency_keys", record, idempotency_repo.put)

    async def purge_expired(self) -> int:
        """Forget the keys whose retention has passed; returns how many."""
        async with self._db.transaction() as tx:
            return await idempotency_repo.purge(tx.conn, self._clock.now())


@contextmanager
def _read_ahead(conn: Connection, calls: Sequence[_Commit]) -> Iterator[None]:
    """Within the block, the rows several calls of the group will lock, read and locked
    by one statement per reader (in key order); a call takes its row with `read_earlier`.
    """
    wanted: dict[ReadAhead, set[str]] = {}
    for call in calls:
        if call.ahead is not None:
            reader, key = call.ahead
            wanted.setdefault(reader, set()).add(key)
    found: dict[tuple[ReadAhead, str], object] = {}
    for reader, keys in wanted.items():
        if len(keys) > 1:  # a lone row is read by its call, as it would be anyway
            found.update(((reader, key), row) for key, row in reader(conn, sorted(keys)).items())
    conn.info[_READ_AHEAD] = found
    try:
        yield
    finally:
        # The connection's info outlives the transaction (the pool keeps it).
        conn.info.pop(_READ_AHEAD, None)


def read_earlier(conn: Connection, reader: ReadAhead, key: str) -> object | None:
    """The row ``reader`` read ahead for ``key`` in this group, once (a second call on the
    same row reads it again, with the first one's changes); None when there is none.
    """
    found: dict[tuple[ReadAhead, str], object] | None = conn.info.get(_READ_AHEAD)
    return None if found is None else found.pop((reader, key), None)


class _Running:
    """Marks a key as running in this process for the duration of a ``with`` block."""

    def __init__(self, running: set[tuple[str, str]], slot: tuple[str, str]) -> None:
        self._running = running
        self._slot = slot

    def __enter__(self) -> None:
        if self._slot in self._running:
            raise _in_flight(self._slot[1])
        self._running.add(self._slot)

    def __exit__(self, *exc: object) -> None:
        self._running.discard(self._slot)


class Claim:
    """A key held by `IdempotentCalls.claim`."""

    def __init__(self, calls: IdempotentCalls, scope: str, key: str, fingerprint: str, stored: str | None) -> None:
        self._calls = calls
        self._scope = scope
        self._key = key
        self._fingerprint = fingerprint
        self.stored = stored
        """The response of an earlier call with this key (then nothing is to be done)."""

    async def commit(self, effect: SyncEffect) -> tuple[str, bool]:
        """Run ``effect`` and remember its response in one transaction. Returns the response
        and True, or — when another process finished the key meanwhile — its response and
        False (``effect`` did not run).
        """
        return await self._calls._commit(self._scope, self._key, self._fingerprint, effect)
