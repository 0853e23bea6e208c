"""TnS suspensions freeze wallets: nothing goes out while frozen, money still comes in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from furima.events.v1 import events_pb2
from furima.tns.v1 import enforcement_service_pb2 as standing
from furima.tns.v1 import events_pb2 as tns_events

from libs.errors import FailedPrecondition
from libs.storage import Database
from services.payments.container import PaymentsContainer
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service.safety_feed import standing_consumer

BANK = platform_account(AccountKind.BANK_CLEARING, "JPY")
ESCROW = platform_account(AccountKind.ESCROW, "JPY", shard=0)
CASH = user_account("usr_a", AccountKind.CASH, "JPY")


class _Events:
    """An event source holding a fixed list (the TnS stream, in memory)."""

    def __init__(self, events: Sequence[events_pb2.Event]) -> None:
        self.events = list(events)

    async def stream(self, after: int, types: Sequence[str], follow: bool) -> AsyncIterator[events_pb2.Event]:
        for event in self.events:
            if event.sequence > after and (not types or event.type in types):
                yield event


def _event(sequence: int, previous: int, level: int) -> events_pb2.Event:
    change = tns_events.UserStandingChanged(user_id="usr_a", previous_level=previous, level=level, reason="fraud")
    event = events_pb2.Event(
        id=f"evt_{sequence}", sequence=sequence, type=change.DESCRIPTOR.full_name, aggregate_id="usr_a", source="tns"
    )
    event.payload.Pack(change)
    return event


async def test_suspension_freezes_outgoing_money_until_reinstatement(payments: PaymentsContainer, db: Database) -> None:
    """Suspended: a payment from the wallet is WALLET_FROZEN, a refund still lands; reinstated: it pays again."""
    await payments.ledger.transfer(TransferDraft("top_up", (Leg(BANK, -1000), Leg(CASH, 1000))))
    pay = TransferDraft("pay", (Leg(CASH, -300), Leg(ESCROW, 300)))
    suspended = _event(1, standing.STANDING_LEVEL_RESTRICTED, standing.STANDING_LEVEL_SUSPENDED)
    events = _Events([suspended])
    feed = standing_consumer(db, events)
    assert await feed.drain() == 1
    with pytest.raises(FailedPrecondition) as info:
        await payments.ledger.transfer(pay)
    assert info.value.reason == "WALLET_FROZEN"
    await payments.ledger.transfer(TransferDraft("refund", (Leg(ESCROW, -200), Leg(CASH, 200))))
    assert await feed.apply(suspended) is False  # delivered again: applied once

    events.events.append(_event(2, standing.STANDING_LEVEL_SUSPENDED, standing.STANDING_LEVEL_RESTRICTED))
    assert await feed.drain() == 1
    await payments.ledger.transfer(pay)
    report = await payments.ledger.verify()
    assert report.consistent
