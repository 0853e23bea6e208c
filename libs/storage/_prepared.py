"""Hot statements run on the connection's DBAPI cursor, compiled once per dialect.

SQLAlchemy's execution of a cached statement costs 20-60 µs of Python per call (the
cache key, an execution context, parameter processing, events, a result object) where
SQLite runs a small indexed write in 5-10 µs. For the few statements a hot path runs on
every call, `Prepared` keeps what SQLAlchemy would compute each time: the SQL text, the
parameter order and the type processors of its dialect. It runs inside the caller's
transaction on the same DBAPI connection, so it is exactly the statement SQLAlchemy
would send, and a DBAPI error comes out wrapped as SQLAlchemy wraps it.

What it does not do, it refuses with a ValueError before any SQL is sent: an UPDATE's
parameter named like a column (when built), Python-side column defaults and expanding
(``IN``) parameters (the first time it runs). When anything listens
to the engine's cursor executions (a test recording statements, SQL instrumentation), a
call goes through SQLAlchemy as usual so that the listener sees it.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Update

_Processor = Callable[[Any], Any] | None


class _Plan:
    """A statement's SQL for one dialect, with the parameter order and processors."""

    __slots__ = ("_columns", "_dialect", "binders", "defaults", "names", "readers", "shape", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        if compiled.insert_prefetch or compiled.update_prefetch:  # type: ignore[attr-defined]
            raise ValueError("Prepared runs no Python-side column defaults: give every column a value")
        binds = compiled.binds  # type: ignore[attr-defined]
        if any(b.expanding for b in binds.values()):
            raise ValueError("Prepared takes no expanding (IN) parameters")
        if not dialect.positional:
            raise ValueError(f"Prepared needs a positional paramstyle, {dialect.name} has {dialect.paramstyle}")
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())  # type: ignore[attr-defined]
        # A bound value given in the statement itself (not required) is its default.
        self.defaults = {n: b.effective_value for n, b in binds.items() if not b.required}
        self.binders: tuple[_Processor, ...] = tuple(
            binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in self.names
        )
        self._dialect = dialect
        self._columns = list(getattr(statement, "exported_columns", ()))
        self.readers: tuple[_Processor, ...] | None = None
        self.shape: Any = None

    def _learn_rows(self, description: Sequence[Sequence[Any]]) -> None:
        # Rows as SQLAlchemy makes them: the columns' names as attributes, each value read
        # by its column's type. A textual statement may type only some of its columns:
        # those are matched by name, as SQLAlchemy does.
        names = [d[0] for d in description]
        columns: list[Any] = self._columns
        if len(columns) != len(names):
            by_name = {c.key: c for c in columns}
            columns = [by_name.get(n) for n in names]
        else:
            names = [c.key for c in columns]
        dialect = self._dialect
        readers = tuple(
            None if c is None else c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        )
        self.readers = readers if any(readers) else None
        self.shape = namedtuple("Row", names, rename=True)  # type: ignore[misc]

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for name, bind in zip(self.names, self.binders, strict=True):
            value = params[name] if name in params else self.defaults[name]
            values.append(value if bind is None else bind(value))
        return tuple(values)

    def read(self, rows: list[Any], description: Sequence[Sequence[Any]]) -> list[Any]:
        if self.shape is None:
            self._learn_rows(description)
        make = self.shape._make
        if self.readers is None:
            return [make(r) for r in rows]
        readers = self.readers
        return [make([v if f is None else f(v) for f, v in zip(readers, r, strict=True)]) for r in rows]


class Prepared:
    """One Core statement (``update(...)``, ``insert(table)``, ``select(...)``, ``text(...)``)
    for a hot path; ``column_keys`` names an insert's columns (every one of them gets a value).
    """

    def __init__(self, statement: ClauseElement, *, column_keys: Sequence[str] | None = None) -> None:
        if isinstance(statement, Update):
            # SQLAlchemy reads such a parameter as a new value for the column: the statement
            # would run here and fail when a listener sends it through SQLAlchemy.
            given = {k for k, b in statement.compile().binds.items() if b.required}  # type: ignore[attr-defined]
            named_like_columns = given & set(statement.table.c.keys())
            if named_like_columns:
                raise ValueError(f"parameters named like the table's columns: {sorted(named_like_columns)}")
        self.statement = statement
        self._column_keys = tuple(column_keys) if column_keys else None
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row the statement returns (none for a write without RETURNING), each a
        tuple with the columns' names as attributes.
        """
        if _listened(conn):
            result = conn.execute(self.statement, dict(params))  # type: ignore[call-overload]
            return list(result) if result.returns_rows else []
        plan = self._plan(conn.dialect)
        cursor = self._execute(conn, plan, plan.parameters(params))
        try:
            description = cursor.description
            return plan.read(cursor.fetchall(), description) if description is not None else []
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first row, or None."""
        found = self.rows(conn, params)
        return found[0] if found else None

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        found = self.rows(conn, params)
        return found[0][0] if found else None

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a write; returns how many rows it matched."""
        if _listened(conn):
            return conn.execute(self.statement, dict(params)).rowcount  # type: ignore[call-overload, no-any-return]
        plan = self._plan(conn.dialect)
        cursor = self._execute(conn, plan, plan.parameters(params))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute a write once per parameter set (the DBAPI's executemany)."""
        if not rows:
            return
        if _listened(conn):
            conn.execute(self.statement, [dict(r) for r in rows])  # type: ignore[call-overload]
            return
        plan = self._plan(conn.dialect)
        self._execute(conn, plan, [plan.parameters(r) for r in rows], many=True).close()

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _Plan(self.statement, dialect, self._column_keys)
        return plan

    @staticmethod
    def _execute(conn: Connection, plan: _Plan, parameters: Any, *, many: bool = False) -> Any:
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        cursor = dbapi_conn.cursor()
        dialect = conn.dialect
        try:
            if many:
                cursor.executemany(plan.sql, parameters)
            else:
                cursor.execute(plan.sql, parameters)
        except dialect.loaded_dbapi.Error as exc:
            cursor.close()
            disconnected = dialect.is_disconnect(exc, dbapi_conn, cursor)
            if disconnected:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                plan.sql,
                parameters,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=disconnected,
                dialect=dialect,
            ) from exc
        return cursor


def _listened(conn: Connection) -> bool:
    # A listener (tests, instrumentation) must see every statement: let SQLAlchemy run it.
    return bool(conn.dispatch.before_cursor_execute)
