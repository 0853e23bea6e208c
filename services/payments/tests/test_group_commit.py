"""Idempotent calls that commit together: one refused call undoes only itself, a group
that fails as a whole is run again call by call, and every call gets its own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Connection, Engine, event, func, select, text
from sqlalchemy.exc import OperationalError

from libs.clock import FrozenClock
from libs.errors import Aborted, FailedPrecondition
from libs.storage import Database
from services.payments.service.idempotency import IdempotentCalls, _lock_key, read_earlier
from services.payments.store.tables import idempotency_keys


@pytest.fixture
async def scratch(db: Database) -> Database:
    """The payments database with a table the effects below write to."""
    async with db.transaction() as tx:
        await tx.conn.execute(text("CREATE TABLE scratch (name VARCHAR(20) PRIMARY KEY)"))
    return db


def writes(name: str, *, then: Exception | None = None) -> Callable[[Connection], str]:
    """An effect that inserts ``name``, then raises ``then`` (after writing) if given."""

    def effect(conn: Connection) -> str:
        conn.execute(text("INSERT INTO scratch (name) VALUES (:n)"), {"n": name})
        if then is not None:
            raise then
        return f"done {name}"

    return effect


async def names(db: Database) -> list[str]:
    """What the effects left in the scratch table."""
    async with db.read() as conn:
        return sorted(row.name for row in await conn.execute(text("SELECT name FROM scratch")))


async def keys(db: Database) -> int:
    """Idempotency records stored."""
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(idempotency_keys)) or 0)


async def commit_all(calls: IdempotentCalls, effects: dict[str, Callable[[Connection], str]]) -> list[object]:
    """Commit one call per effect at once (key = its name); each call's response or error."""

    async def one(key: str, effect: Callable[[Connection], str]) -> str:
        async with calls.claim("svc:Op", key, f"hash-{key}") as claim:
            response, _ = await claim.commit(effect)
            return response

    return await asyncio.gather(*(one(k, e) for k, e in effects.items()), return_exceptions=True)


async def test_a_refused_call_undoes_only_itself(scratch: Database, clock: FrozenClock) -> None:
    """Five calls at once, the third refused after writing: its row and key are gone, the others' are stored."""
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24))
    refused = FailedPrecondition("no", reason="NOPE")
    effects = {f"c{i}": writes(f"c{i}", then=refused if i == 2 else None) for i in range(5)}
    results = await commit_all(calls, effects)
    assert results[2] is refused
    assert [r for i, r in enumerate(results) if i != 2] == ["done c0", "done c1", "done c3", "done c4"]
    assert await names(scratch) == ["c0", "c1", "c3", "c4"]
    assert await keys(scratch) == 4


async def test_calls_arriving_together_share_a_transaction(scratch: Database, clock: FrozenClock) -> None:
    """Twenty calls at once take fewer write transactions than calls, and their idempotency
    records are written by fewer statements than calls (one per group).
    """
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24))
    transactions = 0
    record_inserts = 0
    write_sync = scratch.write_sync

    async def counted(fn: Callable[[Connection], object]) -> object:
        nonlocal transactions
        transactions += 1
        return await write_sync(fn)

    def count_inserts(conn: object, cursor: object, statement: str, *args: object) -> None:
        nonlocal record_inserts
        record_inserts += statement.startswith("INSERT INTO idempotency_keys")

    scratch.write_sync = counted  # type: ignore[method-assign, assignment]
    event.listen(Engine, "before_cursor_execute", count_inserts)
    try:
        results = await commit_all(calls, {f"k{i}": writes(f"k{i}") for i in range(20)})
    finally:
        event.remove(Engine, "before_cursor_execute", count_inserts)
    assert results == [f"done k{i}" for i in range(20)]
    assert await names(scratch) == sorted(f"k{i}" for i in range(20))
    assert await keys(scratch) == 20
    assert transactions < 20
    assert record_inserts == transactions


async def test_a_group_failing_as_a_whole_runs_again_call_by_call(scratch: Database, clock: FrozenClock) -> None:
    """A database error (not a refusal) in one call fails its group; each call then runs alone:
    the others commit once, the broken one gets the error, nothing is half applied.
    """
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24))
    broken = OperationalError("INSERT", {}, Exception("disk I/O error"))
    effects = {f"g{i}": writes(f"g{i}", then=broken if i == 1 else None) for i in range(4)}
    results = await commit_all(calls, effects)
    assert results[1] is broken
    assert [r for i, r in enumerate(results) if i != 1] == ["done g0", "done g2", "done g3"]
    assert await names(scratch) == ["g0", "g2", "g3"]
    assert await keys(scratch) == 3


async def test_replays_in_a_group_answer_the_first_response(scratch: Database, clock: FrozenClock) -> None:
    """Keys committed earlier, sent again at once with new ones: replays move nothing, new keys commit."""
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24))
    await commit_all(calls, {"r0": writes("r0"), "r1": writes("r1")})
    results = await commit_all(calls, {"r0": writes("r0-again"), "r1": writes("r1-again"), "r2": writes("r2")})
    assert results == ["done r0", "done r1", "done r2"]
    assert await names(scratch) == ["r0", "r1", "r2"]


async def test_a_group_looks_keys_up_inside_its_transaction(scratch: Database, clock: FrozenClock) -> None:
    """Calls sent without a read first (PostgreSQL's way) in one group: a key committed
    before is replayed from the group's own lookup, the new ones commit.
    """
    if scratch.dialect != "postgresql":
        pytest.skip("PostgreSQL only: on SQLite run_once reads the key before the transaction")
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24))
    await calls.run_once("svc:Op", "q0", "hash-q0", writes("q0"))
    ran: list[str] = []

    def tracked(name: str) -> Callable[[Connection], str]:
        def effect(conn: Connection) -> str:
            ran.append(name)
            return writes(name)(conn)

        return effect

    results = await asyncio.gather(
        *(calls.run_once("svc:Op", k, f"hash-{k}", tracked(f"{k}-now")) for k in ("q0", "q1", "q2"))
    )
    assert results == [("done q0", False), ("done q1-now", True), ("done q2-now", True)]
    assert await names(scratch) == ["q0", "q1-now", "q2-now"]
    assert ran == ["q1-now", "q2-now"]  # found in the lookup: q0's effect never ran, not even to roll back


async def test_a_key_held_by_another_transaction_is_refused_in_a_group(scratch: Database, clock: FrozenClock) -> None:
    """PostgreSQL: while another process's transaction holds a key's advisory lock, the call
    with that key in a group answers ABORTED (in flight); the group's other calls commit.
    """
    if scratch.dialect != "postgresql":
        pytest.skip("PostgreSQL only: across processes a key is held by an advisory lock")
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24))
    async with scratch.engine.connect() as other, other.begin():
        await other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("svc:Op", "held")})
        results = await asyncio.gather(
            *(calls.run_once("svc:Op", k, f"hash-{k}", writes(k)) for k in ("free1", "held", "free2")),
            return_exceptions=True,
        )
    assert isinstance(results[1], Aborted)
    assert results[1].reason == "IDEMPOTENCY_KEY_IN_FLIGHT"
    assert [results[0], results[2]] == [("done free1", True), ("done free2", True)]
    assert await names(scratch) == ["free1", "free2"]


async def test_groups_take_savepoints_only_after_a_refusal(scratch: Database, clock: FrozenClock) -> None:
    """A group runs its calls without savepoints; a refused call fails it and each call runs
    alone (the refused one answers its error, nothing of it is kept); the groups after that
    give each call a savepoint, where a refusal undoes only itself and the others commit.
    """
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24))
    savepoints = 0

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        nonlocal savepoints
        savepoints += statement.startswith("SAVEPOINT")

    event.listen(Engine, "before_cursor_execute", count)
    try:
        await commit_all(calls, {f"a{i}": writes(f"a{i}") for i in range(10)})
        before_refusal = savepoints
        refused = FailedPrecondition("no", reason="NOPE")
        mixed = {f"b{i}": writes(f"b{i}", then=refused if i == 1 else None) for i in range(4)}
        results = await commit_all(calls, mixed)
        after = savepoints
        careful = {f"c{i}": writes(f"c{i}", then=refused if i == 3 else None) for i in range(10)}
        write_sync = scratch.write_sync
        transactions = 0

        async def counted(fn: Callable[[Connection], object]) -> object:
            nonlocal transactions
            transactions += 1
            return await write_sync(fn)

        scratch.write_sync = counted  # type: ignore[method-assign, assignment]
        later = await commit_all(calls, careful)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert before_refusal == 0
    assert results[1] is refused
    assert later[3] is refused
    assert [r for i, r in enumerate(later) if i != 3] == [f"done c{i}" for i in range(10) if i != 3]
    kept = [f"a{i}" for i in range(10)] + ["b0", "b2", "b3"] + [f"c{i}" for i in range(10) if i != 3]
    assert await names(scratch) == sorted(kept)
    assert await keys(scratch) == len(kept)
    assert savepoints > after
    assert transactions < 10  # the refusal undid only its savepoint: no call ran alone again


async def test_a_row_read_ahead_is_taken_by_one_call_and_read_again_by_the_next(
    scratch: Database, clock: FrozenClock
) -> None:
    """A group reads the rows its calls named once, in key order; the first call on a row
    takes it, a second call on the same row gets nothing and reads it itself.
    """
    if scratch.dialect != "postgresql":
        pytest.skip("PostgreSQL only: on SQLite calls read their rows themselves")
    calls = IdempotentCalls(scratch, clock, timedelta(hours=24), linger=0.05)
    asked: list[list[str]] = []

    def reader(_conn: Connection, keys: Sequence[str]) -> dict[str, object]:
        asked.append(list(keys))
        return {key: f"row {key}" for key in keys}

    def takes(row: str) -> Callable[[Connection], str]:
        def effect(conn: Connection) -> str:
            return str(read_earlier(conn, reader, row))

        return effect

    named = [("a", "r2"), ("b", "r1"), ("c", "r2")]
    answers = await asyncio.gather(
        *(calls.run_once("svc:Op", key, f"h-{key}", takes(row), read_ahead=(reader, row)) for key, row in named)
    )
    assert asked == [["r1", "r2"]]
    assert sorted(response for response, _ in answers) == ["None", "row r1", "row r2"]
