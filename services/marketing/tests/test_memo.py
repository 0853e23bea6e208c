"""Per-transaction memo: computed once inside a transaction, afresh in the next one."""

from __future__ import annotations

from sqlalchemy import Connection, create_engine

from services.marketing.service._memo import TransactionMemo


def test_values_last_for_one_transaction() -> None:
    """Two reads in one transaction compute once; the next transaction computes again."""
    engine = create_engine("sqlite://")
    memo: TransactionMemo[int] = TransactionMemo()
    computed: list[str] = []

    def compute(key: str) -> int:
        computed.append(key)
        return len(computed)

    def read(conn: Connection, key: str) -> int:
        return memo.get(conn, key, lambda: compute(key))

    with engine.connect() as conn:
        with conn.begin():
            assert (read(conn, "a"), read(conn, "a"), read(conn, "b")) == (1, 1, 2)
        with conn.begin():
            assert read(conn, "a") == 3
        assert read(conn, "a") == 4  # outside a transaction: never kept
        assert read(conn, "a") == 5
    assert computed == ["a", "b", "a", "a", "a"]
