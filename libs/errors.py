"""Domain errors: what went wrong, in the domain's words, with no knowledge of gRPC.

Services raise these from their domain and store layers; `libs.rpc.errors` is the one
place that maps them to gRPC status codes with `google.rpc` rich details.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request: its path (``"user.email"``) and why."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error a client can cause or observe.

    ``reason`` is a stable UPPER_SNAKE_CASE identifier clients may switch on (it becomes
    ``google.rpc.ErrorInfo.reason``); ``message`` is for humans; ``metadata`` adds
    machine-readable context (never secrets).
    """

    def __init__(self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})

    default_reason = "ERROR"


class InvalidArgument(DomainError):
    """The request is malformed, whatever the state of the system."""

    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: list[FieldViolation] | None = None,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = list(violations or [])


class NotFound(DomainError):
    """The entity does not exist (or the caller may not know that it does)."""

    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """The entity the client tried to create exists already."""

    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in the state the operation needs (e.g. a suspended account)."""

    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrency conflict; the client may retry the whole operation."""

    default_reason = "ABORTED"


class Unauthenticated(DomainError):
    """The caller's credentials are missing or invalid."""

    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller is known but not allowed to do this."""

    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(DomainError):
    """A quota or throttle refused the call; ``retry_after`` says when to try again."""

    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency is down; the operation did not happen and may be retried."""

    default_reason = "UNAVAILABLE"


@dataclass
class Violations:
    """Collects field violations while validating a request, then raises them at once."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, path: str, description: str) -> None:
        """Record that ``path`` is invalid."""
        self.items.append(FieldViolation(path, description))

    def require(self, value: object, path: str, description: str = "is required") -> None:
        """Record a violation when ``value`` is empty."""
        if not value:
            self.add(path, description)

    def raise_if_any(self, message: str = "the request has invalid fields") -> None:
        """Raise `InvalidArgument` with every collected violation, if there are any."""
        if self.items:
            raise InvalidArgument(message, list(self.items))
