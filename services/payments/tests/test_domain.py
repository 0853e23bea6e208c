"""The pure rules: accounts and floors, balanced transfers, points lots, idempotency hashes."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from services.payments.domain.accounts import (
    Account,
    AccountKind,
    account_id,
    floor_for,
    platform_account,
    user_account,
)
from services.payments.domain.idempotency import (
    MIN_RETENTION,
    IdempotencyRecord,
    replay,
    request_hash,
    retention_until,
)
from services.payments.domain.points import GrantRequest, PointsLot, plan_spend, split_payment, validate_grant
from services.payments.domain.transfers import (
    InsufficientFunds,
    Leg,
    TransferDraft,
    apply,
    currency_sums,
    reversal,
    validate_transfer,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CASH = user_account("usr_a", AccountKind.CASH, "JPY")
BANK = platform_account(AccountKind.BANK_CLEARING, "JPY")


def test_floors_per_kind() -> None:
    """User buckets floor at zero, credit at minus its limit, platform books are unbounded."""
    assert [floor_for(k) for k in (AccountKind.CASH, AccountKind.POINTS, AccountKind.SALES)] == [0, 0, 0]
    assert floor_for(AccountKind.CREDIT, 50_000) == -50_000
    assert floor_for(AccountKind.ESCROW) is None
    assert account_id("usr_a", AccountKind.CASH, "JPY") == "usr_a/cash/JPY"
    with pytest.raises(ValueError, match="user bucket"):
        platform_account(AccountKind.CASH, "JPY")


def test_balanced_transfer_is_accepted_and_applied() -> None:
    """A top-up (bank clearing → cash) balances and moves both balances."""
    draft = TransferDraft("top_up", (Leg(BANK, -1000), Leg(CASH, 1000)))
    validate_transfer(draft)
    assert apply({}, draft) == {BANK.account_id: -1000, CASH.account_id: 1000}


def test_unbalanced_transfer_is_refused_with_its_currency() -> None:
    """Entries summing to non-zero in a currency → UNBALANCED_TRANSFER naming the difference."""
    usd_cash = user_account("usr_a", AccountKind.CASH, "USD")
    usd_escrow = platform_account(AccountKind.ESCROW, "USD", shard=0)
    draft = TransferDraft("x", (Leg(BANK, -1000), Leg(CASH, 1000), Leg(usd_cash, 5), Leg(usd_escrow, -4)))
    with pytest.raises(InvalidArgument) as caught:
        validate_transfer(draft)
    assert caught.value.reason == "UNBALANCED_TRANSFER"
    assert caught.value.metadata == {"USD": "1"}


def test_malformed_transfer_names_each_problem() -> None:
    """One leg, a zero amount, a repeated account or a bad currency are field violations."""
    bad = Account("x/cash/yen", "x", AccountKind.CASH, "yen", 0)
    with pytest.raises(InvalidArgument) as caught:
        validate_transfer(TransferDraft("", (Leg(bad, 0),)))
    assert {v.field for v in caught.value.violations} == {"kind", "legs", "legs[0].amount", "legs[0].currency"}
    with pytest.raises(InvalidArgument):
        validate_transfer(TransferDraft("x", (Leg(CASH, 1), Leg(CASH, -1))))


def test_floor_refuses_the_whole_transfer() -> None:
    """A debit below zero raises INSUFFICIENT_FUNDS and leaves the balances as they were."""
    balances = {CASH.account_id: 500}
    with pytest.raises(InsufficientFunds):
        apply(balances, TransferDraft("pay", (Leg(CASH, -501), Leg(BANK, 501))))
    assert balances == {CASH.account_id: 500}


def test_reversal_negates_every_leg() -> None:
    """A reversal is a new transfer with each leg negated, pointing at the original."""
    legs = (Leg(BANK, -1000), Leg(CASH, 1000))
    undo = reversal("reversal", "trf_1", legs)
    assert [leg.amount for leg in undo.legs] == [1000, -1000]
    assert undo.reverses == "trf_1"
    assert apply(apply({}, TransferDraft("t", legs)), undo) == {BANK.account_id: 0, CASH.account_id: 0}


# Accounts of the property test: two users' cash, one credit line, two platform books, in two currencies.
ACCOUNTS = [
    user_account("usr_a", AccountKind.CASH, "JPY"),
    user_account("usr_b", AccountKind.CASH, "JPY"),
    user_account("usr_a", AccountKind.CREDIT, "JPY", credit_limit=3000),
    platform_account(AccountKind.BANK_CLEARING, "JPY"),
    platform_account(AccountKind.ESCROW, "JPY", shard=0),
    user_account("usr_a", AccountKind.CASH, "USD"),
    platform_account(AccountKind.BANK_CLEARING, "USD"),
]
moves = st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS), st.integers(1, 5000)), max_size=60)


@given(moves)
def test_any_sequence_of_transfers_keeps_the_ledger_sound(steps: list[tuple[Account, Account, int]]) -> None:
    """Whatever transfers are attempted, every currency sums to zero and no floored account is below its floor."""
    balances: dict[str, int] = {}
    for source, target, amount in steps:
        if source == target or source.currency != target.currency:
            continue
        with contextlib.suppress(InsufficientFunds):
            balances = apply(balances, TransferDraft("move", (Leg(source, -amount), Leg(target, amount))))
    legs = [Leg(a, balances.get(a.account_id, 0)) for a in ACCOUNTS]
    assert all(total == 0 for total in currency_sums(legs).values())
    assert all(a.floor is None or balances.get(a.account_id, 0) >= a.floor for a in ACCOUNTS)


def lot(lot_id: str, remaining: int, days: float) -> PointsLot:
    """A lot of JPY points expiring ``days`` after NOW."""
    return PointsLot(lot_id, "usr_a", remaining, remaining, "JPY", "cmp", NOW + timedelta(days=days))


def test_points_spend_soonest_expiry_first_and_skip_expired() -> None:
    """Spending draws from the lot expiring first; expired lots count for nothing."""
    lots = [lot("late", 500, 30), lot("gone", 900, -1), lot("soon", 300, 2)]
    assert plan_spend(lots, 600, NOW) == [("soon", 300), ("late", 300)]
    with pytest.raises(ValueError, match="800 points available"):
        plan_spend(lots, 801, NOW)


def test_points_are_spent_before_other_money() -> None:
    """A payment takes all available points first, the rest from other money."""
    assert split_payment(300, 1000) == (300, 700)
    assert split_payment(5000, 1000) == (1000, 0)


def test_grant_validation_names_contract_fields() -> None:
    """A malformed grant lists each bad field by its path in GrantPointsRequest."""
    bad = GrantRequest("", "bob", 0, "jpy", "", NOW - timedelta(seconds=1))
    with pytest.raises(InvalidArgument) as caught:
        validate_grant(bad, NOW)
    assert {v.field for v in caught.value.violations} == {
        "idempotency_key",
        "user_id",
        "amount.amount",
        "amount.currency",
        "campaign_id",
        "expires_at",
    }


def test_request_hash_is_stable_and_order_free() -> None:
    """The same fields in any order hash alike; any changed field hashes differently."""
    assert request_hash({"a": 1, "b": "x"}) == request_hash({"b": "x", "a": 1})
    assert request_hash({"a": 1, "b": "x"}) != request_hash({"a": 2, "b": "x"})


def test_replay_refuses_another_request_and_keeps_a_day() -> None:
    """A record replays its response for its own hash only (IDEMPOTENCY_KEY_REUSED), kept ≥ 24 h."""
    record = IdempotencyRecord("c:Grant", "k", "h1", "resp", NOW, NOW + MIN_RETENTION)
    assert replay(record, "h1") == "resp"
    with pytest.raises(InvalidArgument) as caught:
        replay(record, "h2")
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert retention_until(NOW, timedelta(hours=1)) == NOW + timedelta(hours=24)
