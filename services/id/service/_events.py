"""Builders of the outbox payloads (`furima.id.v1.events_pb2`)."""

from __future__ import annotations

from datetime import datetime

from furima.id.v1 import events_pb2

from libs.pb import timestamp
from services.id.domain.consent import Consent
from services.id.domain.users import User


def user_signed_up(user: User) -> events_pb2.UserSignedUp:
    """UserSignedUp for a new user."""
    return events_pb2.UserSignedUp(user_id=user.id, region=user.region, signed_up_at=timestamp(user.created_at))


def user_suspended(user: User) -> events_pb2.UserSuspended:
    """UserSuspended for a user just suspended."""
    assert user.suspended_at is not None
    return events_pb2.UserSuspended(
        user_id=user.id, reason=user.suspension_reason, suspended_at=timestamp(user.suspended_at)
    )


def user_reinstated(user_id: str, now: datetime) -> events_pb2.UserReinstated:
    """UserReinstated."""
    return events_pb2.UserReinstated(user_id=user_id, reinstated_at=timestamp(now))


def token_revoked(jti: str, subject: str, expires_at: datetime) -> events_pb2.TokenRevoked:
    """TokenRevoked for one access token."""
    return events_pb2.TokenRevoked(jti=jti, subject=subject, expires_at=timestamp(expires_at))


def family_revoked(
    family_id: str, subject: str, client_id: str, reason: str, now: datetime
) -> events_pb2.TokenFamilyRevoked:
    """TokenFamilyRevoked for a whole session."""
    return events_pb2.TokenFamilyRevoked(
        family_id=family_id, subject=subject, client_id=client_id, reason=reason, revoked_at=timestamp(now)
    )


def consent_granted(consent: Consent) -> events_pb2.ConsentGranted:
    """ConsentGranted with the consent's full scope set."""
    return events_pb2.ConsentGranted(
        user_id=consent.user_id,
        client_id=consent.client_id,
        scopes=sorted(consent.scopes),
        granted_at=timestamp(consent.updated_at),
    )


def consent_revoked(user_id: str, client_id: str, now: datetime) -> events_pb2.ConsentRevoked:
    """ConsentRevoked."""
    return events_pb2.ConsentRevoked(user_id=user_id, client_id=client_id, revoked_at=timestamp(now))
