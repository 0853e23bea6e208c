"""Sign-in throttling: a growing delay after failures, per account and per source.

Delays, never lockouts: a stranger who knows an address can slow its owner down by at
most the account cap, and a success clears the account's counter.

Each attempt is counted as a failure *before* the password is checked (and taken back
when it succeeds), so concurrent guesses cannot all pass the check before any of them
is recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from libs.errors import ResourceExhausted


@dataclass(frozen=True)
class ThrottlePolicy:
    """How the delay grows: ``base * 2**(failures - free)`` once ``free`` failures passed."""

    base: float = 1.0
    free_failures: int = 3
    cap: float = 300.0
    # Failures older than this are forgotten, so old mistakes do not keep growing delays.
    forget_after: timedelta = timedelta(hours=24)

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures."""
        if failures < self.free_failures:
            return 0.0
        exponent = min(failures - self.free_failures, 62)  # keeps 2**n finite and cheap
        return min(self.cap, self.base * 2.0**exponent)


ACCOUNT_POLICY = ThrottlePolicy(cap=300.0)
# Many people can share one address (offices, mobile carriers): the source tolerates
# more failures, and more sign-ins in flight, before its delay starts.
SOURCE_POLICY = ThrottlePolicy(free_failures=20, cap=3600.0)


@dataclass(frozen=True)
class ThrottleState:
    """The failure record of one key (``"account:<email>"`` or ``"source:<ip>"``)."""

    key: str
    failures: int = 0
    last_failure_at: datetime | None = None
    blocked_until: datetime | None = None


def check(state: ThrottleState, now: datetime) -> None:
    """Raise RESOURCE_EXHAUSTED with ``retry_after`` while the key is in its delay."""
    if state.blocked_until is not None and now < state.blocked_until:
        wait = (state.blocked_until - now).total_seconds()
        raise ResourceExhausted(
            "too many failed sign-ins; try again later",
            retry_after=wait,
            reason="SIGNIN_THROTTLED",
            metadata={"retry_after_seconds": f"{wait:.0f}"},
        )


def record_failure(state: ThrottleState, policy: ThrottlePolicy, now: datetime) -> ThrottleState:
    """Return the state after one more failure."""
    failures = state.failures
    if state.last_failure_at is not None and now - state.last_failure_at > policy.forget_after:
        failures = 0
    failures += 1
    delay = policy.delay(failures)
    blocked = now + timedelta(seconds=delay) if delay > 0 else None
    return dataclasses.replace(state, failures=failures, last_failure_at=now, blocked_until=blocked)


def release(state: ThrottleState, policy: ThrottlePolicy) -> ThrottleState:
    """Return the state with one reserved failure taken back (the attempt succeeded)."""
    failures = max(0, state.failures - 1)
    delay = policy.delay(failures)
    blocked = state.last_failure_at + timedelta(seconds=delay) if delay > 0 and state.last_failure_at else None
    return dataclasses.replace(state, failures=failures, blocked_until=blocked)


def policy_for(key: str) -> ThrottlePolicy:
    """Return the policy of a throttle key."""
    return ACCOUNT_POLICY if key.startswith("account:") else SOURCE_POLICY


def record_success(state: ThrottleState) -> ThrottleState:
    """Return the state after a successful sign-in: clean."""
    return ThrottleState(state.key)


def account_key(email: str) -> str:
    """Return the throttle key of an account (by normalised e-mail, known or not)."""
    return f"account:{email}"


def source_key(source: str) -> str:
    """Return the throttle key of a source address."""
    return f"source:{source}"
