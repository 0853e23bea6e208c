"""Transaction risk rules, pure: scores and decisions computed by hand from the default policy."""

from __future__ import annotations

import dataclasses

import pytest

from libs.errors import Violations
from services.tns.domain.enforcement import StandingLevel
from services.tns.domain.risk import (
    Decision,
    Party,
    PaymentMethod,
    ReasonCode,
    RiskInputs,
    RiskPolicy,
    TransactionRequest,
    assess,
    validate_request,
)

POLICY = RiskPolicy()
REQUEST = TransactionRequest(
    "pay_1", "usr_buyer", "usr_seller", 5_000, "JPY", PaymentMethod.CARD, "dev_1", "203.0.113.7"
)


def inputs(
    *,
    buyer: Party | None = None,
    seller: Party | None = None,
    age: float | None = 365.0,
    recent: int = 0,
    recent_amount: int = 0,
    device_buyers: int = 1,
    **request: object,
) -> RiskInputs:
    """An established buyer and seller in good standing, with the given overrides."""
    req = dataclasses.replace(REQUEST, **request)  # type: ignore[arg-type]
    return RiskInputs(
        request=req,
        buyer=buyer or Party(req.buyer_id),
        seller=seller or (Party(req.seller_id) if req.seller_id else None),
        buyer_account_age_days=age,
        buyer_recent_assessments=recent,
        buyer_recent_amount=recent_amount,
        device_buyers=device_buyers,
    )


def codes(i: RiskInputs, policy: RiskPolicy = POLICY) -> list[str]:
    """The reason codes of an assessment, in order."""
    return [r.code.value for r in assess(i, policy).reasons]


def test_ordinary_purchase_is_approved_with_no_reasons() -> None:
    """An established buyer paying a small amount scores 0 and is approved."""
    result = assess(inputs(), POLICY)
    assert (result.score, result.decision, result.reasons) == (0, Decision.APPROVE, ())


def test_self_dealing_declines_at_full_score() -> None:
    """A buyer paying themselves is SELF_DEALING: 100 points, DECLINE."""
    i = inputs(seller_id="usr_buyer")
    result = assess(i, POLICY)
    assert (result.score, result.decision, codes(i)) == (100, Decision.DECLINE, ["SELF_DEALING"])


def test_suspended_party_declines_whatever_the_score() -> None:
    """A suspended seller declines even when the policy weighs the reason at 1 point."""
    policy = RiskPolicy(hard_decline_points=1)
    result = assess(inputs(seller=Party("usr_seller", suspended=True)), policy)
    assert (result.score, result.decision) == (1, Decision.DECLINE)
    assert result.reasons[0].code is ReasonCode.SUSPENDED_PARTY
    assert result.reasons[0].detail == "the seller is suspended"


def test_suspension_by_enforcement_counts_like_one_by_id() -> None:
    """A TnS standing of 'suspended' is SUSPENDED_PARTY as much as an ID suspension."""
    i = inputs(buyer=Party("usr_buyer", level=StandingLevel.SUSPENDED))
    assert (codes(i), assess(i, POLICY).decision) == (["SUSPENDED_PARTY"], Decision.DECLINE)


def test_restricted_party_alone_reaches_review_threshold() -> None:
    """A restricted buyer scores exactly 40: REVIEW (the threshold is inclusive)."""
    result = assess(inputs(buyer=Party("usr_buyer", level=StandingLevel.RESTRICTED)), POLICY)
    assert (result.score, result.decision) == (40, Decision.REVIEW)


def test_warned_party_adds_nothing() -> None:
    """A warning is not a restriction: no reason, no points."""
    assert codes(inputs(buyer=Party("usr_buyer", level=StandingLevel.WARNED))) == []


def test_restricted_and_watchlisted_reach_decline_threshold() -> None:
    """Restricted (40) plus watchlist (30) is 70: DECLINE (inclusive)."""
    i = inputs(
        buyer=Party("usr_buyer", level=StandingLevel.RESTRICTED),
        seller=Party("usr_seller", labels=frozenset({"watchlist"})),
    )
    result = assess(i, POLICY)
    assert (result.score, result.decision, codes(i)) == (70, Decision.DECLINE, ["RESTRICTED_PARTY", "WATCHLIST"])


def test_one_reason_names_both_parties() -> None:
    """When both sides are restricted there is one RESTRICTED_PARTY reason naming both."""
    i = inputs(
        buyer=Party("usr_buyer", level=StandingLevel.RESTRICTED),
        seller=Party("usr_seller", level=StandingLevel.RESTRICTED),
    )
    (reason,) = assess(i, POLICY).reasons
    assert (reason.detail, reason.points) == ("the buyer and the seller are restricted", 40)


@pytest.mark.parametrize(
    ("age", "amount", "flagged"),
    [(None, 30_000, True), (6.9, 30_000, True), (7.0, 30_000, False), (1.0, 29_999, False)],
)
def test_new_account_high_amount_boundaries(age: float | None, amount: int, flagged: bool) -> None:
    """A buyer under 7 days old (or unknown) paying ¥30,000 or more earns 40 points: REVIEW."""
    i = inputs(age=age, amount=amount)
    result = assess(i, POLICY)
    assert ("NEW_ACCOUNT_HIGH_AMOUNT" in codes(i)) is flagged
    assert result.decision is (Decision.REVIEW if flagged else Decision.APPROVE)


def test_new_account_paying_a_high_amount_adds_both_reasons() -> None:
    """A day-old buyer paying ¥100,000: 40 + 15 = 55, REVIEW."""
    i = inputs(age=1.0, amount=100_000)
    result = assess(i, POLICY)
    assert (result.score, result.decision, codes(i)) == (
        55,
        Decision.REVIEW,
        ["NEW_ACCOUNT_HIGH_AMOUNT", "HIGH_AMOUNT"],
    )


@pytest.mark.parametrize(
    ("recent", "recent_amount", "points"),
    [(4, 0, 0), (5, 0, 25), (0, 294_999, 0), (0, 295_000, 20), (5, 295_000, 45)],
)
def test_buyer_velocity_counts_and_amounts(recent: int, recent_amount: int, points: int) -> None:
    """Five earlier assessments in an hour add 25; ¥300,000 in 24 h (this ¥5,000 included) adds 20; one reason."""
    result = assess(inputs(recent=recent, recent_amount=recent_amount), POLICY)
    velocity = [r for r in result.reasons if r.code is ReasonCode.BUYER_VELOCITY]
    assert sum(r.points for r in velocity) == points
    assert len(velocity) == (1 if points else 0)


@pytest.mark.parametrize(("device_id", "buyers", "flagged"), [("dev_1", 2, False), ("dev_1", 3, True), ("", 9, False)])
def test_shared_device_from_three_buyers(device_id: str, buyers: int, flagged: bool) -> None:
    """Three or more buyers on one device in 30 days is SHARED_DEVICE (30); no fingerprint, no reason."""
    i = inputs(device_id=device_id, device_buyers=buyers)
    assert codes(i) == (["SHARED_DEVICE"] if flagged else [])
    assert assess(i, POLICY).score == (30 if flagged else 0)


def test_trusted_buyer_is_exempt_from_velocity_and_high_amount_only() -> None:
    """A trusted buyer earns no BUYER_VELOCITY or HIGH_AMOUNT, but a watchlist still counts."""
    buyer = Party("usr_buyer", labels=frozenset({"trusted", "watchlist"}))
    i = inputs(buyer=buyer, amount=200_000, recent=9, recent_amount=500_000)
    result = assess(i, POLICY)
    assert (result.score, result.decision, codes(i)) == (30, Decision.APPROVE, ["WATCHLIST"])


def test_score_is_capped_at_100() -> None:
    """New account (40) + velocity (45) + shared device (30) + high amount (15) = 130, capped to 100."""
    i = inputs(age=0.5, amount=100_000, recent=5, recent_amount=200_000, device_buyers=4)
    result = assess(i, POLICY)
    assert (result.score, result.decision) == (100, Decision.DECLINE)
    assert sum(r.points for r in result.reasons) == 130


def test_movement_without_counterparty_has_no_seller_rules() -> None:
    """A top-up (no seller) is neither self-dealing nor checked for a seller."""
    i = inputs(seller_id="")
    assert i.seller is None
    assert not i.self_dealing
    assert codes(i) == []


def test_validation_reports_every_field_with_contract_paths() -> None:
    """Every malformed field is reported at once, under its proto field path."""
    bad = TransactionRequest("", "", "s" * 41, 0, "jpy", None, "d" * 129, "not-an-ip")
    v = Violations()
    validate_request(v, bad)
    assert {x.field for x in v.items} == {
        "transaction_id",
        "buyer_id",
        "seller_id",
        "amount.amount",
        "amount.currency",
        "payment_method",
        "device_id",
        "ip_address",
    }


def test_validation_accepts_a_well_formed_request() -> None:
    """A complete request, IPv6 included, has no violations."""
    v = Violations()
    validate_request(v, dataclasses.replace(REQUEST, ip_address="2001:db8::1"))
    assert v.items == []


def test_same_movement_ignores_device_and_network() -> None:
    """A retry from another device or IP is the same movement; another amount is not."""
    assert REQUEST.same_movement(dataclasses.replace(REQUEST, device_id="dev_2", ip_address="198.51.100.1"))
    assert not REQUEST.same_movement(dataclasses.replace(REQUEST, amount=5_001))
    assert not REQUEST.same_movement(dataclasses.replace(REQUEST, payment_method=PaymentMethod.BANK))
