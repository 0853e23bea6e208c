"""The database handle: write transactions, their guards, and after-commit callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from libs.storage import Database, GroupCommit
from libs.storage import _database as storage_database


async def test_nested_write_transaction_raises_instead_of_deadlocking(database_url: str) -> None:
    """Opening a write transaction inside another in the same task fails at once."""
    db = Database(database_url)
    try:
        async with db.transaction():
            assert db.in_transaction()
            with pytest.raises(RuntimeError, match="nested write transaction"):
                async with asyncio.timeout(5), db.transaction():
                    pass
        assert not db.in_transaction()
    finally:
        await db.dispose()


async def test_a_task_started_inside_a_transaction_may_open_its_own(database_url: str) -> None:
    """Only the task holding the transaction is guarded; another task waits its turn and succeeds."""
    db = Database(database_url)
    try:
        async with db.transaction() as tx:
            await tx.conn.execute(text("CREATE TABLE t (x INTEGER)"))

        async def insert() -> None:
            async with db.transaction() as tx:
                await tx.conn.execute(text("INSERT INTO t VALUES (1)"))

        async with db.transaction():
            other = asyncio.create_task(insert())
            await asyncio.sleep(0)
        await asyncio.wait_for(other, 5)
        async with db.read() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        await db.dispose()


async def test_after_commit_runs_only_after_a_commit(database_url: str) -> None:
    """Callbacks registered in a transaction run after it commits, never after a rollback."""
    db = Database(database_url)
    ran: list[str] = []
    try:
        async with db.transaction() as tx:
            tx.after_commit(lambda: ran.append("committed"))

        async def fail() -> None:
            async with db.transaction() as tx:
                tx.after_commit(lambda: ran.append("rolled back"))
                raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            await fail()
        assert ran == ["committed"]
    finally:
        await db.dispose()


async def test_fetch_one_reads_committed_rows_without_holding_a_transaction(database_url: str) -> None:
    """fetch_one sees what is committed (not what is still open) and never blocks the writer."""
    db = Database(database_url)
    try:
        async with db.transaction() as tx:
            await tx.conn.execute(text("CREATE TABLE kv (k VARCHAR(10) PRIMARY KEY, v INTEGER)"))
            await tx.conn.execute(text("INSERT INTO kv VALUES ('a', 1)"))
        query = text("SELECT v FROM kv WHERE k = :k")
        row = await db.fetch_one(query, {"k": "a"})
        assert row is not None
        assert row[0] == 1
        assert await db.fetch_one(query, {"k": "missing"}) is None
        async with db.transaction() as tx:
            await tx.conn.execute(text("UPDATE kv SET v = 2 WHERE k = 'a'"))
            during = await db.fetch_one(query, {"k": "a"})  # another snapshot: the old value
            assert during is not None
            assert during[0] == 1
        after = await db.fetch_one(query, {"k": "a"})
        assert after is not None
        assert after[0] == 2
    finally:
        await db.dispose()


async def test_sqlite_commits_leave_checkpoints_to_the_background(tmp_path: Path) -> None:
    """Commits never checkpoint a file database (no stalled commit); a background task does, soon after."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/wal.db")
    try:
        async with db.transaction() as tx:
            assert await tx.conn.scalar(text("PRAGMA wal_autocheckpoint")) == 0
            await tx.conn.execute(text("CREATE TABLE t (x TEXT)"))
            await tx.conn.execute(text("INSERT INTO t VALUES ('a')"))
        async with asyncio.timeout(5):
            # The checkpointer takes the count when it runs; it exposes no event to wait on.
            while db._writes_since_checkpoint:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert (tmp_path / "wal.db-wal").exists()
    finally:
        await db.dispose()


async def test_write_sync_commits_a_synchronous_batch_or_nothing(database_url: str) -> None:
    """write_sync returns fn's result after committing; an error inside rolls everything back."""
    db = Database(database_url)
    try:
        async with db.transaction() as tx:
            await tx.conn.execute(text("CREATE TABLE n (x INTEGER)"))

        def insert_two(conn: Connection) -> int:
            conn.execute(text("INSERT INTO n VALUES (1)"))
            conn.execute(text("INSERT INTO n VALUES (2)"))
            return 2

        def insert_then_fail(conn: Connection) -> None:
            conn.execute(text("INSERT INTO n VALUES (3)"))
            raise ValueError("boom")

        assert await db.write_sync(insert_two) == 2
        with pytest.raises(ValueError, match="boom"):
            await db.write_sync(insert_then_fail)
        row = await db.fetch_one(text("SELECT count(*), sum(x) FROM n"))
        assert row is not None
        assert tuple(row) == (2, 3)
    finally:
        await db.dispose()


@pytest.mark.parametrize("wait", ["gather", "linger"])
async def test_group_commit_gathers_concurrent_items_into_shared_batches(database_url: str, wait: str) -> None:
    """Twenty concurrent writes through a gathering (or lingering) group commit land in a
    few batches, all committed.
    """
    db = Database(database_url)
    batches: list[int] = []
    try:
        async with db.transaction() as tx:
            await tx.conn.execute(text("CREATE TABLE g (x INTEGER)"))

        async def commit(items: Sequence[int]) -> None:
            batches.append(len(items))

            def write(conn: Connection) -> None:
                conn.execute(text("INSERT INTO g VALUES (:x)"), [{"x": i} for i in items])

            await db.write_sync(write)

        group: GroupCommit[int] = GroupCommit(db, commit=commit, **{wait: 0.01})
        await asyncio.gather(*(group.write(i) for i in range(20)))
        row = await db.fetch_one(text("SELECT count(*) FROM g"))
        assert row is not None
        assert row[0] == 20
        assert sum(batches) == 20
        assert len(batches) < 5
    finally:
        await db.dispose()


async def _backend_pid(db: Database) -> int:
    row = await db.fetch_one(text("SELECT pg_backend_pid()"))
    assert row is not None
    return int(row[0])


@asynccontextmanager
async def _killed_while_pooled(url: str) -> AsyncIterator[tuple[Database, int]]:
    """A one-connection pool (and its backend's pid) whose connection was terminated by
    the server while back in the pool after a first read.
    """
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no server to lose a connection to")
    db = Database(url, pool_size=1)
    try:
        pid = await _backend_pid(db)
        killer = Database(url)
        try:
            row = await killer.fetch_one(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            assert row is not None
            assert row[0] is True
        finally:
            await killer.dispose()
        yield db, pid
    finally:
        await db.dispose()


async def test_a_pooled_connection_that_died_while_idle_is_replaced(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a pause (the server restarted, an idle timeout) the dead connection is found
    by its ping at checkout and replaced: the read succeeds on a new one.
    """
    monkeypatch.setattr(storage_database, "PING_AFTER_IDLE_S", 0.0)
    async with _killed_while_pooled(database_url) as (db, first):
        assert await _backend_pid(db) != first


async def test_a_connection_back_in_the_pool_moments_ago_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No round trip for a ping on a hot path: a connection checked in moments ago is used
    as it is (here its backend was killed meanwhile, so the read fails, and the pool then
    replaces it for the next one).
    """
    monkeypatch.setattr(storage_database, "PING_AFTER_IDLE_S", 3600.0)
    async with _killed_while_pooled(database_url) as (db, first):
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(db)
        assert failed.value.connection_invalidated
        assert await _backend_pid(db) != first
