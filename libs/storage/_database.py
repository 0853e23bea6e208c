"""An async database handle with explicit read and write transactions.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a shared lock. PostgreSQL
runs at READ COMMITTED; callers guard their updates in SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from libs.storage._prepared import Prepared

_log = structlog.get_logger("furima.storage")
T = TypeVar("T")

# (database, task) pairs with a write transaction open.
_open_transactions: ContextVar[frozenset[tuple[int, int]]] = ContextVar("furima_open_transactions", default=frozenset())


def is_postgres(url: str) -> bool:
    """Whether a database URL names PostgreSQL."""
    return make_url(url).get_backend_name() == "postgresql"


class Transaction:
    """A connection inside a transaction, plus callbacks to run once it has committed."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after a successful commit (never after a rollback)."""
        self._after_commit.append(callback)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.conn.dialect.name


class Database:
    """Owns the engine of one service's database."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        # hide_parameters: a logged database error must never carry bound values
        # (password hashes, e-mails, token ids).
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.engine.dialect.name != "sqlite":
            _ping_when_idle(self.engine.sync_engine, PING_AFTER_IDLE_S)
        # The same pool, for single-statement reads (`fetch_one`).
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sqlite_writer = asyncio.Lock()
        self._inline: Engine | None = None
        self._inline_conn: Connection | None = None
        self._sync_writer: Engine | None = None
        self._writes_since_checkpoint = 0
        self._checkpointer: asyncio.Task[None] | None = None
        file_backed = bool(parsed.database and parsed.database != ":memory:")
        if self.engine.dialect.name == "sqlite":
            # A file database is checkpointed in the background (see _checkpoint_loop),
            # never by whichever commit happens to fill the WAL.
            _configure_sqlite(self.engine.sync_engine, autocheckpoint=not file_backed)
        if self.engine.dialect.name == "sqlite" and file_backed:
            # Small reads on a hot path run inline on a plain sqlite3 connection: a WAL
            # read of a few indexed rows takes tens of microseconds, much less than
            # handing it to aiosqlite's thread and back (and readers never wait for the
            # writer in WAL mode).
            inline_url = parsed.set(drivername="sqlite")
            self._inline = create_engine(
                inline_url, hide_parameters=True, connect_args={"timeout": 1, "check_same_thread": False}
            )
            # One statement, one implicit snapshot: no BEGIN/ROLLBACK round of its own.
            _configure_sqlite(self._inline, begin=False, busy_timeout_ms=1000, autocheckpoint=False)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def in_transaction(self) -> bool:
        """Whether the current task is inside a write transaction of this database."""
        return self._marker() in _open_transactions.get()

    def _marker(self) -> tuple[int, int]:
        # Per task: a task started inside a transaction inherits the context vars but
        # does not hold the transaction.
        return id(self), id(asyncio.current_task())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction: committed when the block ends, rolled back on error.

        Not re-entrant: opening one inside another in the same task raises at once (on
        SQLite it would wait for itself forever; on PostgreSQL it would commit apart).
        """
        if self.in_transaction():
            raise RuntimeError("nested write transaction on the same database in one task")
        marker = _open_transactions.set(_open_transactions.get() | {self._marker()})
        try:
            async with self._transaction() as tx:
                yield tx
        finally:
            _open_transactions.reset(marker)
        for callback in tx._after_commit:
            callback()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        if self.dialect != "sqlite":
            async with self.engine.connect() as conn:
                tx = Transaction(conn)
                async with conn.begin():
                    yield tx
        else:
            # SQLite has one writer at a time. Queueing this process's writers here is
            # fair and immediate; left to SQLite's busy handler they would sleep and
            # retry (up to 100 ms a try), which wrecks tail latency under load.
            async with self._sqlite_writer, self.engine.connect() as conn:
                conn = await conn.execution_options(furima_begin="BEGIN IMMEDIATE")
                tx = Transaction(conn)
                async with conn.begin():
                    yield tx
            if self._inline is not None:
                self._wrote()

    async def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction on a synchronous connection; return its result.

        For group commits of many small rows. On a SQLite file the transaction runs inline
        on the event loop: a batch of inserts commits in about a millisecond (WAL, no
        fsync on commit, checkpoints in the background), while aiosqlite would hand BEGIN,
        every statement, COMMIT and the reset to its thread and back, each hop a wake-up
        of both threads. This process's writers are serialised by the writer lock first,
        so the loop never waits on SQLite's lock unless another process writes the same
        file (unsupported: run PostgreSQL to scale out), and then at most 2 s. Elsewhere it
        runs on the pool's connection through SQLAlchemy's ``run_sync``. ``fn`` must only
        touch the database (no awaiting, no other I/O).
        """
        if self.in_transaction():
            raise RuntimeError("nested write transaction on the same database in one task")
        if self._inline is None:
            async with self.transaction() as tx:
                return await tx.conn.run_sync(fn)
        async with self._sqlite_writer:
            result = self._write_sync_blocking(fn)
        self._wrote()
        return result

    def _write_sync_blocking(self, fn: Callable[[Connection], T]) -> T:
        if self._sync_writer is None:
            assert self._inline is not None
            self._sync_writer = create_engine(
                self._inline.url, hide_parameters=True, connect_args={"timeout": 2, "check_same_thread": False}
            )
            _configure_sqlite(self._sync_writer, busy_timeout_ms=2000, autocheckpoint=False)
        with self._sync_writer.connect() as conn:
            conn.execution_options(furima_begin="BEGIN IMMEDIATE")
            with conn.begin():
                return fn(conn)

    def _wrote(self) -> None:
        self._writes_since_checkpoint += 1
        if self._checkpointer is None or self._checkpointer.done():
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="sqlite-checkpoint")

    async def _checkpoint_loop(self, interval: float = 0.5) -> None:
        # A commit that fills the WAL would otherwise copy it into the database file and
        # fsync, stalling that commit and everyone queued behind it for ~10 ms. A PASSIVE
        # checkpoint from another thread runs beside the writers instead.
        while True:
            await asyncio.sleep(interval)
            if not self._writes_since_checkpoint:
                continue
            self._writes_since_checkpoint = 0
            try:
                await asyncio.to_thread(self._checkpoint)
            except Exception as exc:  # noqa: BLE001 — a failed checkpoint is retried next round
                _log.warning("WAL checkpoint failed", error=str(exc))

    def _checkpoint(self) -> None:
        assert self._inline is not None
        with self._inline.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot (a deferred transaction, never holding the write lock)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    async def fetch_one(self, statement: Executable | Prepared, params: Mapping[str, Any] | None = None) -> Any:
        """The first row of one small read statement (its own snapshot, no transaction
        held), or None; a `Prepared` statement runs on the DBAPI cursor.

        For point lookups on a hot path: on SQLite it runs inline (see ``__init__``), on
        PostgreSQL through the pool as usual.
        """
        values = dict(params or {})
        if self._inline is not None:
            if self._inline_conn is None or self._inline_conn.closed:
                # Kept open: a checkout, a reset and a check-in per read cost more than it.
                self._inline_conn = self._inline.connect()
            try:
                if isinstance(statement, Prepared):
                    return statement.first(self._inline_conn, values)
                return self._inline_conn.execute(statement, values).first()
            finally:
                # Ends SQLAlchemy's bookkeeping transaction; the driver is in autocommit,
                # so the statement was its own snapshot and nothing is held between reads.
                self._inline_conn.rollback()
        # One statement is its own snapshot: in autocommit there is no BEGIN and ROLLBACK
        # round trip around it (the driver flag is set on checkout and reset on return).
        async with self._autocommit.connect() as aconn:
            if isinstance(statement, Prepared):
                return await aconn.run_sync(statement.first, values)
            return (await aconn.execute(statement, values)).first()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None
        if self._inline is not None:
            self._inline.dispose()
        if self._sync_writer is not None:
            self._sync_writer.dispose()
        await self.engine.dispose()
        await asyncio.sleep(0)


# A pooled connection idle this long is pinged before use (see `_ping_when_idle`).
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """``pool_pre_ping``, for connections back in the pool longer than ``idle_s`` only.

    A server restart or an idle timeout kills pooled connections, and the first statement
    on a dead one would fail the request: such a connection is replaced at checkout. But
    pinging every checkout costs a round trip each time (a hot read is one round trip in
    all), while a connection checked in moments ago is as alive as a ping would show.
    """
    dialect = engine.dialect

    @event.listens_for(engine.pool, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["furima_idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("furima_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return  # new, or back moments ago
        try:
            alive = dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool drops this connection and checks out another (a new one).
            raise DisconnectionError("pooled connection failed its ping") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its ping")


def _configure_sqlite(
    engine: Engine, *, begin: bool = True, busy_timeout_ms: int = 30_000, autocheckpoint: bool = True
) -> None:
    """WAL, foreign keys, a busy timeout, and transactions we begin ourselves (``begin``);
    without ``begin`` every statement is its own transaction (the inline reads). Without
    ``autocheckpoint`` commits never checkpoint (the owner does it in the background).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN, not the driver's legacy heuristics.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    if not begin:
        return

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("furima_begin", "BEGIN"))
