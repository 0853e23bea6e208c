"""The security audit trail's vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from libs.ids import new_ulid

SIGNIN_SUCCEEDED = "signin.succeeded"
SIGNIN_FAILED = "signin.failed"
SIGNIN_THROTTLED = "signin.throttled"
TOKEN_ISSUED = "token.issued"  # noqa: S105 - a protocol name, not a secret
TOKEN_REVOKED = "token.revoked"  # noqa: S105 - a protocol name, not a secret
TOKEN_REFRESH_REUSED = "token.refresh_reused"  # noqa: S105 - a protocol name, not a secret
CONSENT_GRANTED = "consent.granted"
CONSENT_REVOKED = "consent.revoked"
KEY_ROTATED = "key.rotated"
USER_SIGNED_UP = "user.signed_up"
USER_SUSPENDED = "user.suspended"
USER_REINSTATED = "user.reinstated"
CLIENT_REGISTERED = "client.registered"

SYSTEM = "system"


@dataclass(frozen=True)
class AuditEvent:
    """Something security-relevant that happened. Never holds secrets or tokens."""

    id: str
    type: str
    subject: str
    occurred_at: datetime
    client_id: str = ""
    actor: str = SYSTEM
    source: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


def event(
    type_: str,
    subject: str,
    now: datetime,
    *,
    client_id: str = "",
    actor: str = SYSTEM,
    source: str = "",
    details: Mapping[str, str] | None = None,
) -> AuditEvent:
    """Return a new audit event with a fresh id."""
    return AuditEvent(new_ulid("aud_"), type_, subject, now, client_id, actor, source, dict(details or {}))
