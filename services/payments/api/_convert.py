"""Conversions shared by the payments servicers, and the wallet-ownership check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from furima.payments.v1 import wallet_service_pb2 as wallet_pb
from furima.types.v1 import money_pb2

from libs.auth import current_principal
from libs.errors import PermissionDenied, Violations
from services.payments.domain.accounts import AccountKind, check_user_id

K = TypeVar("K")
E = TypeVar("E")

BUCKET_TO_PB = {
    AccountKind.CASH: wallet_pb.BUCKET_CASH,
    AccountKind.POINTS: wallet_pb.BUCKET_POINTS,
    AccountKind.SALES: wallet_pb.BUCKET_SALES,
    AccountKind.CREDIT: wallet_pb.BUCKET_CREDIT,
}


def money(amount: int, currency: str) -> money_pb2.Money:
    """A Money message."""
    return money_pb2.Money(amount=amount, currency=currency)


def bucket_pb(kind: AccountKind) -> wallet_pb.Bucket:
    """The wire bucket of a user account kind (UNSPECIFIED for a platform book)."""
    return BUCKET_TO_PB.get(kind, wallet_pb.BUCKET_UNSPECIFIED)


def wallet_owner(user_id: str) -> str:
    """The wallet a call may read: ``user_id`` must be given, and a user token may name
    only its own wallet (services with the scope read any).
    """
    problems = Violations()
    check_user_id(problems, user_id)
    problems.raise_if_any()
    caller = current_principal()
    if caller.is_user and caller.subject != user_id:
        raise PermissionDenied("a user may read only their own wallet", reason="NOT_WALLET_OWNER")
    return user_id


def enum_filter(problems: Violations, field: str, values: Iterable[K], known: Mapping[K, E]) -> frozenset[E]:
    """The domain values of a repeated enum filter (``statuses``, ``kinds``); a violation
    on ``field[i]`` for each value that is not one of ``known`` (UNSPECIFIED included).
    """
    found: set[E] = set()
    for i, value in enumerate(values):
        if value in known:
            found.add(known[value])
        else:
            problems.add(f"{field}[{i}]", "unknown value")
    return frozenset(found)
