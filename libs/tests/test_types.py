"""UtcDateTime: aware UTC in and out, on SQLite the same stored text as SQLAlchemy's own DATETIME."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite.base import DATETIME

from libs.storage import UtcDateTime

SAMPLES = [
    datetime(2026, 11, 30, 16, 24, 10, 123456, tzinfo=UTC),
    datetime(2026, 11, 30, 16, 24, 10, tzinfo=UTC),  # no microseconds: still six digits
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2027, 1, 1, 8, 30, 0, 5, tzinfo=timezone(timedelta(hours=9))),  # Tokyo: stored as UTC
]


@pytest.mark.parametrize("value", SAMPLES)
def test_sqlite_text_is_what_sqlalchemy_datetime_writes(value: datetime) -> None:
    """The fast SQLite bind gives exactly the text of the DATETIME processor it replaces."""
    dialect = sqlite.dialect()
    fast = UtcDateTime().bind_processor(dialect)
    reference = DATETIME().bind_processor(dialect)
    assert fast is not None
    assert reference is not None
    assert fast(value) == reference(value.astimezone(UTC).replace(tzinfo=None))


def test_round_trip_and_ordering_on_sqlite() -> None:
    """Values come back aware and equal, and sort in time order as stored text."""
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UtcDateTime()))
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        table.metadata.create_all(conn)
        conn.execute(table.insert(), [{"id": i, "at": v} for i, v in enumerate(SAMPLES)])
        back = dict(conn.execute(select(table.c.id, table.c.at)).all())
        ordered = [row.id for row in conn.execute(select(table.c.id).order_by(table.c.at))]
        stored = conn.execute(text("SELECT at FROM t WHERE id = 1")).scalar_one()
    assert [back[i] for i in range(len(SAMPLES))] == SAMPLES
    assert all(v.tzinfo is UTC for v in back.values())
    assert ordered == sorted(range(len(SAMPLES)), key=lambda i: SAMPLES[i])
    assert stored == "2026-11-30 16:24:10.000000"


def test_naive_datetimes_are_refused() -> None:
    """A naive datetime is a bug in the caller, refused before it reaches the database."""
    fast = UtcDateTime().bind_processor(sqlite.dialect())
    assert fast is not None
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 1, 1))
