"""late_steps / run_late: deferred statements run at the end of a unit, in order, or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import Connection, text

from libs.storage import Database, late_steps, run_late


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
