"""Granting points: budget → user, a lot with its expiry, an event; idempotent per key."""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import Connection

from libs.clock import Clock
from libs.events import Outbox
from libs.ids import new_ulid
from services.payments.domain.accounts import AccountKind, platform_account, user_account
from services.payments.domain.idempotency import request_hash
from services.payments.domain.points import GrantRequest, PointsGrant, PointsLot, validate_grant
from services.payments.domain.transfers import Leg, TransferDraft
from services.payments.service._events import points_granted
from services.payments.service.idempotency import IdempotentCalls
from services.payments.service.ledger import Ledger
from services.payments.store import points as points_repo

GRANT_KIND = "points_grant"


def budget_owner(campaign_id: str) -> str:
    """The owner of a campaign's points budget account."""
    return f"cmp:{campaign_id}"


def _fingerprint(request: GrantRequest) -> str:
    assert request.expires_at is not None
    return request_hash(
        {
            "user_id": request.user_id,
            "amount": request.amount,
            "currency": request.currency,
            "campaign_id": request.campaign_id,
            "expires_at": request.expires_at.isoformat(),
            "description": request.description,
        }
    )


def encode_grant(grant: PointsGrant) -> str:
    """The stored response of a grant (replayed verbatim)."""
    return orjson.dumps(grant).decode()


def decode_grant(stored: str) -> PointsGrant:
    """A grant back from `encode_grant`."""
    raw = orjson.loads(stored)
    raw["expires_at"] = datetime.fromisoformat(raw["expires_at"])
    raw["granted_at"] = datetime.fromisoformat(raw["granted_at"])
    return PointsGrant(**raw)


class PointsGranter:
    """Grants points funded from a campaign's budget account."""

    def __init__(self, ledger: Ledger, calls: IdempotentCalls, outbox: Outbox, clock: Clock) -> None:
        self._ledger = ledger
        self._calls = calls
        self._outbox = outbox
        self._clock = clock

    async def grant(self, caller: str, request: GrantRequest) -> PointsGrant:
        """Grant once per (caller, idempotency key); a replay returns the first grant.

        INVALID_ARGUMENT with field violations for a malformed request, or reason
        IDEMPOTENCY_KEY_REUSED; ABORTED while the same key is in flight.
        """
        # The expiry is checked only for a new grant: a retry after the points expired
        # must still get its first answer.
        validate_grant(request, None)

        def effect(conn: Connection) -> str:
            validate_grant(request, self._clock.now())
            return encode_grant(self._post(conn, request))

        # On a SQLite file the whole transaction runs inline (no thread hop per statement).
        async with self._calls.claim(f"{caller}:GrantPoints", request.idempotency_key, _fingerprint(request)) as claim:
            if claim.stored is not None:
                return decode_grant(claim.stored)
            stored, fresh = await claim.commit(effect)
        if fresh:
            self._outbox.notify()
        return decode_grant(stored)

    def _post(self, conn: Connection, request: GrantRequest) -> PointsGrant:
        assert request.expires_at is not None
        budget = platform_account(AccountKind.POINTS_BUDGET, request.currency, owner=budget_owner(request.campaign_id))
        points = user_account(request.user_id, AccountKind.POINTS, request.currency)
        draft = TransferDraft(
            GRANT_KIND,
            (Leg(budget, -request.amount), Leg(points, request.amount)),
            request.description or f"points from campaign {request.campaign_id}",
        )
        posted = self._ledger.post(conn, draft)
        lot = PointsLot(
            new_ulid("lot_"),
            request.user_id,
            request.amount,
            request.amount,
            request.currency,
            request.campaign_id,
            request.expires_at,
        )
        points_repo.add(conn, lot, points.account_id, posted.transfer_id, posted.posted_at)
        grant = PointsGrant(
            lot.lot_id,
            posted.transfer_id,
            request.user_id,
            request.amount,
            request.currency,
            request.campaign_id,
            request.expires_at,
            posted.posted_at,
        )
        self._outbox.append_sync(conn, request.user_id, points_granted(grant))
        return grant
