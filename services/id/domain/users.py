"""Users: e-mail normalisation, the password policy, account status."""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from datetime import datetime

from libs.errors import FailedPrecondition, Violations

PASSWORD_MIN = 10
PASSWORD_MAX = 256
DISPLAY_NAME_MAX = 100
EMAIL_MAX = 254

# Deliberately loose: the only real proof of an address is a mail that arrives.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REGION = re.compile(r"^[A-Z]{2}$")


class UserStatus(enum.StrEnum):
    """Whether a user may sign in and use their tokens."""

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


@dataclass(frozen=True)
class User:
    """A registered user."""

    id: str
    email: str
    password_hash: str
    display_name: str
    region: str
    status: UserStatus
    created_at: datetime
    suspended_at: datetime | None = None
    suspension_reason: str = ""

    @property
    def is_suspended(self) -> bool:
        """Whether the account is suspended."""
        return self.status is UserStatus.SUSPENDED


def normalise_email(email: str) -> str:
    """Return the canonical form of an address: trimmed and lower-cased (uniqueness is on it)."""
    return email.strip().lower()


def validate_sign_up(violations: Violations, email: str, password: str, display_name: str, region: str) -> None:
    """Record every problem of a sign-up request in ``violations``."""
    normalised = normalise_email(email)
    if not normalised:
        violations.add("email", "is required")
    elif len(normalised) > EMAIL_MAX or not _EMAIL.match(normalised):
        violations.add("email", "is not a valid e-mail address")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        violations.add("password", f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if len(display_name) > DISPLAY_NAME_MAX:
        violations.add("display_name", f"must be at most {DISPLAY_NAME_MAX} characters")
    if region and not _REGION.match(region.upper()):
        violations.add("region", "must be an ISO 3166-1 alpha-2 code such as JP")


def suspend(user: User, reason: str, now: datetime) -> User:
    """Return the suspended user (unchanged when already suspended, so suspension is idempotent)."""
    if user.is_suspended:
        return user
    return dataclasses.replace(user, status=UserStatus.SUSPENDED, suspended_at=now, suspension_reason=reason)


def reinstate(user: User) -> User:
    """Return the active user (unchanged when already active)."""
    if not user.is_suspended:
        return user
    return dataclasses.replace(user, status=UserStatus.ACTIVE, suspended_at=None, suspension_reason="")


def ensure_active(user: User) -> None:
    """Raise FAILED_PRECONDITION/USER_SUSPENDED for a suspended user."""
    if user.is_suspended:
        raise FailedPrecondition("the account is suspended", reason="USER_SUSPENDED")
