"""late_steps / gather_late / settle_late: rows gathered in a unit (and the units nested in
it) are written by one flush per key at the outermost end, in rank order, or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from sqlalchemy import Connection, text

from libs.storage import Database, gather_late, late_steps, settle_late


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A database with a ``log`` table whose rows keep the order they were written in."""
    database = Database(database_url)
    async with database.transaction() as tx:
        await tx.conn.execute(text("CREATE TABLE log (n INTEGER PRIMARY KEY, what VARCHAR(40))"))
    yield database
    await database.dispose()


def _log(what: str) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        conn.execute(text("INSERT INTO log (n, what) VALUES ((SELECT count(*) FROM log), :w)"), {"w": what})

    return step


def _log_all(conn: Connection, items: Sequence[str]) -> None:
    """One flush of gathered items: records what it was given as one row."""
    _log("+".join(items))(conn)


async def _rows(db: Database) -> list[str]:
    async with db.read() as conn:
        return [r[0] for r in (await conn.execute(text("SELECT what FROM log ORDER BY n"))).all()]


async def test_gathered_rows_are_written_after_the_unit_by_rank(db: Database) -> None:
    """Inside a unit: the body first, then the plain keys in the order they came, then the
    last ones by rank, whatever came first; nothing is left on the pooled connection.
    """

    def body(conn: Connection) -> None:
        with late_steps(conn):
            gather_late(conn, "events", "event", _log_all, last=True, rank=1)
            gather_late(conn, "moves", "move 1", _log_all, last=True)
            gather_late(conn, "records", "record", _log_all)
            _log("insert")(conn)
            gather_late(conn, "moves", "move 2", _log_all, last=True)
        assert "furima_late_steps" not in conn.info

    await db.write_sync(body)
    assert await _rows(db) == ["insert", "record", "move 1+move 2", "event"]


async def test_outside_a_unit_an_item_is_written_at_once(db: Database) -> None:
    """gather_late with no unit open flushes its one item now."""

    def body(conn: Connection) -> None:
        gather_late(conn, "records", "alone", _log_all)
        _log("after")(conn)

    await db.write_sync(body)
    assert await _rows(db) == ["alone", "after"]


async def test_a_unit_that_raises_writes_none_of_its_items(db: Database) -> None:
    """An error in the body drops the gathered items (and the transaction rolls back), and
    the connection carries nothing into its next transaction.
    """
    flushed: list[str] = []

    def failing(conn: Connection) -> None:
        with late_steps(conn):
            gather_late(conn, "records", "lost", lambda c, items: flushed.extend(items))
            raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await db.write_sync(failing)
    await db.write_sync(lambda conn: gather_late(conn, "records", "next", _log_all))
    assert (flushed, await _rows(db)) == ([], ["next"])


async def test_nested_units_hand_their_items_to_the_outermost_flush(db: Database) -> None:
    """Items of one key from the calls of a group reach one flush at the group's end."""

    def body(conn: Connection) -> None:
        with late_steps(conn):
            for call in ("a", "b"):
                with late_steps(conn):
                    gather_late(conn, "events", f"event {call}", _log_all, last=True)
                    gather_late(conn, "records", f"record {call}", _log_all)
                    _log(f"call {call}")(conn)

    await db.write_sync(body)
    assert await _rows(db) == ["call a", "call b", "record a+record b", "event a+event b"]


async def test_a_nested_unit_that_raises_drops_its_items(db: Database) -> None:
    """An inner unit whose body fails hands nothing outwards: its call's rows roll back with
    its savepoint, and so must its records and events.
    """

    def body(conn: Connection) -> None:
        with late_steps(conn):
            for call in ("a", "b", "c"):
                try:
                    with conn.begin_nested(), late_steps(conn):
                        gather_late(conn, "records", f"record {call}", _log_all)
                        if call == "b":
                            raise ValueError("refused")
                except ValueError:
                    pass

    await db.write_sync(body)
    assert await _rows(db) == ["record a+record c"]


async def test_a_higher_rank_goes_last_even_when_its_first_item_came_first(db: Database) -> None:
    """Events after balance moves, in a group whose first call moved no money."""

    def body(conn: Connection) -> None:
        with late_steps(conn):
            with late_steps(conn):
                gather_late(conn, "events", "event a", _log_all, last=True, rank=1)
            with late_steps(conn):
                gather_late(conn, "moves", "move b", _log_all, last=True)
                gather_late(conn, "events", "event b", _log_all, last=True, rank=1)

    await db.write_sync(body)
    assert await _rows(db) == ["move b", "event a+event b"]


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


async def test_a_call_in_a_savepoint_may_settle_its_own_items(db: Database) -> None:
    """Inside its savepoint a call writes its own pending items (they roll back with it);
    the enclosing unit's other keys still wait for the end.
    """

    def body(conn: Connection) -> None:
        with late_steps(conn):
            for call in ("a", "b"):
                with conn.begin_nested(), late_steps(conn):
                    gather_late(conn, "records", f"record {call}", _log_all)
                    gather_late(conn, "moves", f"move {call}", _log_all, last=True)
                    settle_late(conn, "moves")

    await db.write_sync(body)
    assert await _rows(db) == ["move a", "move b", "record a+record b"]


async def test_settling_an_enclosing_unit_s_items_inside_a_savepoint_is_refused(db: Database) -> None:
    """A savepoint rolled back after settling would lose the enclosing unit's items: refused."""

    def body(conn: Connection) -> None:
        with late_steps(conn):
            gather_late(conn, "moves", "earlier call", _log_all)
            with conn.begin_nested(), late_steps(conn):
                settle_late(conn, "moves")

    with pytest.raises(RuntimeError, match="inside a savepoint"):
        await db.write_sync(body)
