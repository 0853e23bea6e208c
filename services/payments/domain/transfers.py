"""Transfers: sets of entries that balance per currency. The one rule of the ledger."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from libs.errors import FailedPrecondition, InvalidArgument, Violations
from services.payments.domain.accounts import Account, allows, is_currency


class InsufficientFunds(FailedPrecondition):
    """A transfer would take an account below its floor; nothing was moved."""

    default_reason = "INSUFFICIENT_FUNDS"


@dataclass(frozen=True)
class Leg:
    """One account's share of a transfer: positive credits its balance, negative debits it."""

    account: Account
    amount: int

    @property
    def currency(self) -> str:
        """The account's currency (entries never convert)."""
        return self.account.currency


POINTS_EXPIRY = "points_expiry"
"""The kind of the transfer that returns expired points to their campaign's budget."""
PAYMENT_REFUND = "payment_refund"
"""A refund: after completion it takes back the seller's proceeds, frozen or not."""
PLATFORM_INITIATED = frozenset({POINTS_EXPIRY, PAYMENT_REFUND})
"""Kinds the platform posts on its own account: they apply even to a frozen wallet."""


@dataclass(frozen=True)
class TransferDraft:
    """A transfer to post: what kind of movement, its legs, and what it refers to."""

    kind: str
    legs: tuple[Leg, ...]
    description: str = ""
    reverses: str | None = None


def currency_sums(legs: Iterable[Leg]) -> dict[str, int]:
    """The sum of the legs per currency."""
    sums: dict[str, int] = defaultdict(int)
    for leg in legs:
        sums[leg.currency] += leg.amount
    return dict(sums)


def validate_transfer(draft: TransferDraft) -> None:
    """Refuse a transfer that is not a well-formed double entry.

    At least two legs, no zero leg, no account twice, valid currencies, and every
    currency summing to zero (reason ``UNBALANCED_TRANSFER``).
    """
    problems = Violations()
    problems.require(draft.kind, "kind")
    if len(draft.legs) < 2:
        problems.add("legs", "a transfer has at least two legs")
    ids = [leg.account.account_id for leg in draft.legs]
    if len(set(ids)) != len(ids):
        problems.add("legs", "an account appears once per transfer")
    for i, leg in enumerate(draft.legs):
        if leg.amount == 0:
            problems.add(f"legs[{i}].amount", "must not be zero")
        if not is_currency(leg.currency):
            problems.add(f"legs[{i}].currency", "must be an ISO 4217 code")
    problems.raise_if_any("the transfer is malformed")
    unbalanced = {c: s for c, s in currency_sums(draft.legs).items() if s != 0}
    if unbalanced:
        detail = ", ".join(f"{c} {s:+d}" for c, s in sorted(unbalanced.items()))
        raise InvalidArgument(
            f"the transfer does not balance: {detail}",
            reason="UNBALANCED_TRANSFER",
            metadata={c: str(s) for c, s in unbalanced.items()},
        )


def reversal(draft_kind: str, transfer_id: str, legs: Sequence[Leg], description: str = "") -> TransferDraft:
    """The transfer that undoes ``legs`` (a correction is a new transfer, never an edit)."""
    return TransferDraft(
        kind=draft_kind,
        legs=tuple(Leg(leg.account, -leg.amount) for leg in legs),
        description=description or f"reversal of {transfer_id}",
        reverses=transfer_id,
    )


def apply(balances: Mapping[str, int], draft: TransferDraft) -> dict[str, int]:
    """The balances after ``draft`` (all or nothing): the model the store's guarded
    UPDATEs implement, used to reason about and property-test the rules.
    """
    validate_transfer(draft)
    after = dict(balances)
    for leg in draft.legs:
        new = after.get(leg.account.account_id, 0) + leg.amount
        if not allows(leg.account.floor, new):
            raise InsufficientFunds(
                f"{leg.account.account_id} cannot go below {leg.account.floor}",
                metadata={"account_id": leg.account.account_id},
            )
        after[leg.account.account_id] = new
    return after
