"""late_steps / run_late: deferred statements run at the end of a unit, in order, or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from sqlalchemy import Connection, text

from libs.storage import Database, gather_late, late_steps, run_late, settle_late


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A database with a ``log`` table whose rows keep the order they were written in."""
    database = Database(database_url)
    async with database.transaction() as tx:
        await tx.conn.execute(text("CREATE TABLE log (n INTEGER PRIMARY KEY, what VARCHAR(20))"))
    yield database
    await database.dispose()


def _log(what: str) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        conn.execute(text("INSERT INTO log (n, what) VALUES ((SELECT count(*) FROM log), :w)"), {"w": what})

    return step


async def _rows(db: Database) -> list[str]:
    async with db.read() as conn:
        return [r[0] for r in (await conn.execute(text("SELECT what FROM log ORDER BY n"))).all()]


async def test_late_steps_run_after_the_unit_in_order_and_last_ones_at_the_very_end(db: Database) -> None:
    """Inside a unit: the body first, then late steps in the order they came, then the last ones."""

    def body(conn: Connection) -> None:
        with late_steps(conn):
            run_late(conn, _log("event"), last=True)
            run_late(conn, _log("balance 1"))
            _log("insert")(conn)
            run_late(conn, _log("balance 2"))
        assert "furima_late_steps" not in conn.info  # nothing left on the pooled connection

    await db.write_sync(body)
    assert await _rows(db) == ["insert", "balance 1", "balance 2", "event"]


async def test_outside_a_unit_a_step_runs_at_once(db: Database) -> None:
    """run_late with no unit open is a plain call."""

    def body(conn: Connection) -> None:
        run_late(conn, _log("now"))
        _log("after")(conn)

    await db.write_sync(body)
    assert await _rows(db) == ["now", "after"]


async def test_a_unit_that_raises_runs_none_of_its_steps(db: Database) -> None:
    """An error in the body skips the deferred steps (and the transaction rolls back), and the
    connection carries no leftover steps into its next transaction.
    """
    ran: list[str] = []

    def failing(conn: Connection) -> None:
        with late_steps(conn):
            run_late(conn, lambda c: ran.append("late"))
            raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await db.write_sync(failing)
    await db.write_sync(lambda conn: run_late(conn, _log("next")))
    assert (ran, await _rows(db)) == ([], ["next"])


async def test_a_nested_unit_runs_its_steps_when_it_ends(db: Database) -> None:
    """A unit inside a unit (a savepoint per call in a group) runs its own steps at its own end."""

    def body(conn: Connection) -> None:
        with late_steps(conn):
            run_late(conn, _log("outer late"))
            with late_steps(conn):
                run_late(conn, _log("inner late"))
                _log("inner body")(conn)
            _log("outer body")(conn)

    await db.write_sync(body)
    assert await _rows(db) == ["inner body", "inner late", "outer body", "outer late"]


def _log_all(conn: Connection, items: Sequence[str]) -> None:
    """One flush of gathered items: records what it was given as one row."""
    _log("+".join(items))(conn)


async def test_gathered_items_are_written_by_one_flush_at_the_outermost_end(db: Database) -> None:
    """Items of one key from nested units (calls of a group) reach one flush, in their place
    among the outer unit's steps; the inner units' own steps still run at their own end.
    """

    def body(conn: Connection) -> None:
        with late_steps(conn):
            for call in ("a", "b"):
                with late_steps(conn):
                    gather_late(conn, "events", f"event {call}", _log_all, last=True)
                    gather_late(conn, "records", f"record {call}", _log_all)
                    run_late(conn, _log(f"balance {call}"))
            run_late(conn, _log("group late"))

    await db.write_sync(body)
    assert await _rows(db) == [
        "balance a",
        "balance b",
        "record a+record b",
        "group late",
        "event a+event b",
    ]


async def test_gathered_items_come_before_the_late_steps_of_their_unit(db: Database) -> None:
    """In one unit, gathered rows (no contended lock) are written before its late steps
    (which lock), and last gathered rows in their place among the last steps.
    """

    def body(conn: Connection) -> None:
        with late_steps(conn):
            run_late(conn, _log("balance"))
            gather_late(conn, "records", "record", _log_all)
            run_late(conn, _log("last step"), last=True)
            gather_late(conn, "events", "event", _log_all, last=True)

    await db.write_sync(body)
    assert await _rows(db) == ["record", "balance", "last step", "event"]


async def test_a_unit_that_raises_drops_its_gathered_items(db: Database) -> None:
    """An inner unit whose body or own late step fails hands nothing outwards: its call's
    rows roll back with its savepoint, and so must its records and events.
    """

    def refused_step(conn: Connection) -> None:
        raise ValueError("floor")

    def body(conn: Connection) -> None:
        with late_steps(conn):
            for call, step in (("a", _log("balance a")), ("b", refused_step), ("c", _log("balance c"))):
                try:
                    with conn.begin_nested(), late_steps(conn):
                        gather_late(conn, "records", f"record {call}", _log_all)
                        run_late(conn, step)
                except ValueError:
                    pass
            try:
                with conn.begin_nested(), late_steps(conn):
                    gather_late(conn, "records", "record d", _log_all)
                    raise KeyError("refused in its body")
            except KeyError:
                pass

    await db.write_sync(body)
    assert await _rows(db) == ["balance a", "balance c", "record a+record c"]


async def test_gathered_outside_a_unit_is_written_at_once(db: Database) -> None:
    """gather_late with no unit open flushes its one item now."""

    def body(conn: Connection) -> None:
        gather_late(conn, "records", "alone", _log_all)
        _log("after")(conn)

    await db.write_sync(body)
    assert await _rows(db) == ["alone", "after"]


async def test_settling_writes_the_items_so_far_earlier_units_first(db: Database) -> None:
    """settle_late writes a key's pending items now (the enclosing unit's, then this one's)
    for a read that must see them; the unit's end writes only what came after.
    """

    def body(conn: Connection) -> None:
        with late_steps(conn):
            with late_steps(conn):
                gather_late(conn, "moves", "call 1", _log_all)
            with late_steps(conn):
                gather_late(conn, "moves", "call 2", _log_all)
                settle_late(conn, "moves")
                _log("read")(conn)
                gather_late(conn, "moves", "call 2 again", _log_all)
            with late_steps(conn):
                gather_late(conn, "moves", "call 3", _log_all)

    await db.write_sync(body)
    assert await _rows(db) == ["call 1", "call 2", "read", "call 2 again+call 3"]


async def test_settling_an_enclosing_unit_s_items_inside_a_savepoint_is_refused(db: Database) -> None:
    """A savepoint rolled back after settling would lose the enclosing unit's items: refused."""

    def body(conn: Connection) -> None:
        with late_steps(conn):
            gather_late(conn, "moves", "earlier call", _log_all)
            with conn.begin_nested(), late_steps(conn):
                settle_late(conn, "moves")

    with pytest.raises(RuntimeError, match="inside a savepoint"):
        await db.write_sync(body)
