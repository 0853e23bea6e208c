"""Consent: the scopes a user granted a client, until they withdraw it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Consent:
    """A user's grant to one client."""

    user_id: str
    client_id: str
    scopes: frozenset[str]
    granted_at: datetime
    updated_at: datetime
    revoked_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        """Whether the consent currently holds."""
        return self.revoked_at is None


def grant(existing: Consent | None, user_id: str, client_id: str, scopes: frozenset[str], now: datetime) -> Consent:
    """Return the consent after the user agrees to ``scopes``.

    An active consent extends (never shrinks); a revoked one starts over with only the new scopes.
    """
    if existing is None or not existing.is_active:
        return Consent(user_id, client_id, scopes, granted_at=now, updated_at=now)
    return dataclasses.replace(existing, scopes=existing.scopes | scopes, updated_at=now)


def revoke(consent: Consent, now: datetime) -> Consent:
    """Return the withdrawn consent (unchanged when already withdrawn)."""
    if not consent.is_active:
        return consent
    return dataclasses.replace(consent, revoked_at=now, updated_at=now)
