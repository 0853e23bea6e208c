"""Prepared: a hot statement run on the DBAPI cursor gives what SQLAlchemy's execution of
the same statement gives (values, types, row names, row counts, errors), inside the
caller's transaction, on SQLite and PostgreSQL, on the inline and the pooled connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from libs.storage import Database, Prepared, UtcDateTime

T = TypeVar("T")

_md = MetaData()
_wallets = Table(
    "wallets",
    _md,
    Column("id", String(20), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("floor", BigInteger),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("note", String(40), default="new"),
)
_w = _wallets.c
_OPEN = Prepared(insert(_wallets), column_keys=("id", "balance", "floor", "opened_at", "note"))
_ADD = Prepared(
    update(_wallets)
    .where(_w.id == bindparam("wallet"), or_(_w.floor.is_(None), _w.balance + bindparam("delta") >= _w.floor))
    .values(balance=_w.balance + bindparam("delta"))
    .returning(_w.balance)
)
_GET = Prepared(select(_wallets).where(_w.id == bindparam("id")))
_T0 = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(_md.create_all)
    yield database
    await database.dispose()


def _row(n: int, **values: Any) -> dict[str, Any]:
    return {"id": f"w{n}", "balance": 100, "floor": 0, "opened_at": _T0, "note": "n", **values}


@pytest.fixture(params=["inline", "pooled"])
def run(request: pytest.FixtureRequest, db: Database) -> Callable[[Callable[[Connection], T]], Any]:
    """Runs a function in a write transaction: ``inline`` through `write_sync` (on a SQLite
    file, the plain sqlite3 connection), ``pooled`` on the async engine's connection.
    """

    async def pooled(fn: Callable[[Connection], T]) -> T:
        async with db.transaction() as tx:
            return await tx.conn.run_sync(fn)

    return db.write_sync if request.param == "inline" else pooled


async def test_rows_match_sqlalchemys_with_names_and_types(run: Any) -> None:
    """Written by Prepared and by SQLAlchemy: the same stored text; read by both: the same
    values, an aware UTC datetime, the columns' names as attributes.
    """
    tokyo = _T0.astimezone(timezone(timedelta(hours=9)))  # stored as the same instant in UTC

    def work(conn: Connection) -> tuple[Any, Any, list[Any]]:
        _OPEN.run(conn, _row(1, opened_at=tokyo, floor=None))
        conn.execute(insert(_wallets), _row(2, opened_at=tokyo, floor=None))
        stored = conn.execute(text("SELECT CAST(opened_at AS VARCHAR) FROM wallets ORDER BY id")).scalars().all()
        return _GET.first(conn, {"id": "w1"}), conn.execute(select(_wallets).where(_w.id == "w1")).one(), stored

    mine, theirs, stored = await run(work)
    assert stored[0] == stored[1]
    assert tuple(mine) == tuple(theirs) == ("w1", 100, None, _T0, "n")
    assert mine.opened_at.tzinfo is not None
    assert (mine.id, mine.balance, mine.note) == ("w1", 100, "n")


async def test_a_guarded_update_returns_the_new_value_or_nothing(run: Any) -> None:
    def work(conn: Connection) -> list[Any]:
        _OPEN.run(conn, _row(1))
        return [
            _ADD.scalar(conn, {"wallet": "w1", "delta": -30}),
            _ADD.scalar(conn, {"wallet": "w1", "delta": -71}),  # below the floor: refused
            _ADD.scalar(conn, {"wallet": "nobody", "delta": 5}),
            _GET.first(conn, {"id": "w1"}).balance,
        ]

    assert await run(work) == [70, None, None, 70]


async def test_run_counts_rows_and_run_many_writes_each(run: Any) -> None:
    bump = Prepared(update(_wallets).where(_w.balance >= bindparam("least")).values(note=bindparam("new_note")))

    def work(conn: Connection) -> tuple[int, int, list[Any]]:
        _OPEN.run_many(conn, [_row(n, balance=n * 10) for n in range(5)])
        _OPEN.run_many(conn, [])
        moved = bump.run(conn, {"least": 20, "new_note": "rich"})
        none = bump.run(conn, {"least": 1_000, "new_note": "x"})
        return moved, none, conn.execute(select(_w.id, _w.note).order_by(_w.id)).all()

    moved, none, rows = await run(work)
    assert (moved, none) == (3, 0)
    assert [tuple(r) for r in rows] == [("w0", "n"), ("w1", "n"), ("w2", "rich"), ("w3", "rich"), ("w4", "rich")]


async def test_a_value_bound_in_the_statement_is_its_default(run: Any) -> None:
    at_least = Prepared(select(_w.id).where(_w.balance >= bindparam("least", 50)).order_by(_w.id))

    def work(conn: Connection) -> tuple[list[str], list[str]]:
        _OPEN.run_many(conn, [_row(1, balance=10), _row(2, balance=60)])
        return [r.id for r in at_least.rows(conn, {})], [r.id for r in at_least.rows(conn, {"least": 5})]

    assert await run(work) == (["w2"], ["w1", "w2"])


async def test_textual_statement_reads_its_typed_columns_by_name(run: Any) -> None:
    query = Prepared(text("SELECT id, opened_at, balance FROM wallets WHERE id = :id").columns(opened_at=UtcDateTime()))

    def work(conn: Connection) -> Any:
        _OPEN.run(conn, _row(1))
        return query.first(conn, {"id": "w1"})

    row = await run(work)
    assert (row.id, row.opened_at, row.balance) == ("w1", _T0, 100)


async def test_a_driver_error_is_sqlalchemys_and_rolls_everything_back(run: Any, db: Database) -> None:
    def work(conn: Connection) -> None:
        _OPEN.run(conn, _row(1))
        _OPEN.run(conn, _row(2))
        _OPEN.run(conn, _row(1, balance=5))  # the same primary key

    with pytest.raises(IntegrityError):
        await run(work)
    async with db.read() as conn:
        assert (await conn.execute(select(_w.id))).all() == []


async def test_listeners_see_every_statement(run: Any) -> None:
    """With something listening to cursor executions, statements go through SQLAlchemy:
    the listener sees them, and the answers keep their shape.
    """
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0])

    def work(conn: Connection) -> tuple[Any, Any, int]:
        _OPEN.run_many(conn, [_row(1), _row(2)])
        balance = _ADD.scalar(conn, {"wallet": "w1", "delta": 1})
        row = _GET.first(conn, {"id": "w2"})
        return balance, row, _OPEN.run(conn, _row(3))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        balance, row, count = await run(work)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert (balance, row.id, row.opened_at, count) == (101, "w2", _T0, 1)
    assert [s for s in seen if s in {"INSERT", "UPDATE", "SELECT"}] == ["INSERT", "UPDATE", "SELECT", "INSERT"]


def test_what_it_cannot_do_is_refused_before_any_sql(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"named like the table's columns: \['id'\]"):
        Prepared(update(_wallets).where(_w.id == bindparam("id")).values(note="x"))
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    _md.create_all(engine)
    without_note = Prepared(insert(_wallets), column_keys=("id", "balance", "floor", "opened_at"))
    any_of = Prepared(select(_w.id).where(_w.id.in_(bindparam("ids", expanding=True))))
    with engine.begin() as conn:
        with pytest.raises(ValueError, match="column defaults"):
            without_note.run(conn, _row(1))
        with pytest.raises(ValueError, match="expanding"):
            any_of.rows(conn, {"ids": ["w1"]})
    engine.dispose()


async def test_fetch_one_runs_it_outside_any_transaction(db: Database) -> None:
    """`Database.fetch_one` takes a Prepared read: its own snapshot, a named row or None."""
    await db.write_sync(lambda conn: _OPEN.run(conn, _row(1)))
    row = await db.fetch_one(_GET, {"id": "w1"})
    assert (row.id, row.balance, row.opened_at) == ("w1", 100, _T0)
    assert await db.fetch_one(_GET, {"id": "w2"}) is None
    # Nothing is held: a writer gets in at once, and the next read sees its row.
    await db.write_sync(lambda conn: _OPEN.run(conn, _row(2)))
    assert (await db.fetch_one(_GET, {"id": "w2"})).id == "w2"
