"""User use cases on a real SQLite database."""

from __future__ import annotations

import pytest
from furima.id.v1 import events_pb2

from libs.clock import FrozenClock
from libs.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.id.container import IdContainer
from services.id.tests.conftest import PASSWORD, FakeCaller

ADMIN = FakeCaller("svc-tns", "svc-tns", frozenset({"id.users.admin"}))


async def test_sign_up_validation_errors_carry_field_violations(container: IdContainer) -> None:
    """A bad sign-up raises INVALID_ARGUMENT listing each bad field."""
    with pytest.raises(InvalidArgument) as exc:
        await container.users.sign_up("nope", "short")
    assert {v.field for v in exc.value.violations} == {"email", "password"}


async def test_email_is_unique_case_insensitively(container: IdContainer) -> None:
    """A second sign-up with the same address in another case is EMAIL_TAKEN."""
    await container.users.sign_up("Alice@Example.com", PASSWORD)
    with pytest.raises(AlreadyExists) as exc:
        await container.users.sign_up("alice@example.com", PASSWORD)
    assert exc.value.reason == "EMAIL_TAKEN"


async def test_sign_up_emits_event(container: IdContainer) -> None:
    """Sign-up writes UserSignedUp to the outbox."""
    user = await container.users.sign_up("a@example.com", PASSWORD, "A", "jp")
    events = await container.outbox.read(container.db, 0, ["furima.id.v1.UserSignedUp"])
    assert [e.aggregate_id for e in events] == [user.id]
    assert events_pb2.UserSignedUp.FromString(events[0].payload).region == "JP"


async def test_sign_in_returns_tokens_and_same_error_for_unknown_email(container: IdContainer) -> None:
    """Right password signs in; wrong password and unknown e-mail fail identically."""
    await container.users.sign_up("a@example.com", PASSWORD)
    user, tokens = await container.users.sign_in("A@example.com", PASSWORD)
    assert tokens.access_token
    assert tokens.refresh_token
    assert tokens.token_type == "Bearer"
    verified = await container.checker.check(tokens.access_token)
    assert verified is not None
    assert verified.subject == user.id
    assert verified.session_id
    errors = []
    for email, pw in (("a@example.com", "wrong password!"), ("ghost@example.com", PASSWORD)):
        with pytest.raises(Unauthenticated) as exc:
            await container.users.sign_in(email, pw)
        errors.append((exc.value.reason, exc.value.message))
    assert errors[0] == errors[1] == ("INVALID_CREDENTIALS", errors[0][1])


async def test_sign_in_throttles_with_growing_delay(container: IdContainer, clock: FrozenClock) -> None:
    """After three failures further attempts wait; the delay doubles; success resets it."""
    await container.users.sign_up("a@example.com", PASSWORD)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await container.users.sign_in("a@example.com", "wrong password!", source="10.0.0.1")
    with pytest.raises(ResourceExhausted) as exc:
        await container.users.sign_in("a@example.com", PASSWORD, source="10.0.0.1")
    assert exc.value.retry_after == pytest.approx(1.0)
    clock.advance(1)
    with pytest.raises(Unauthenticated):
        await container.users.sign_in("a@example.com", "wrong password!", source="10.0.0.2")
    with pytest.raises(ResourceExhausted) as exc:
        await container.users.sign_in("a@example.com", PASSWORD, source="10.0.0.2")
    assert exc.value.retry_after == pytest.approx(2.0)
    clock.advance(2)
    await container.users.sign_in("a@example.com", PASSWORD, source="10.0.0.3")
    # The account counter is clean again: a single failure causes no delay.
    with pytest.raises(Unauthenticated):
        await container.users.sign_in("a@example.com", "wrong password!", source="10.0.0.3")
    await container.users.sign_in("a@example.com", PASSWORD, source="10.0.0.3")
    types = [e.type for e in (await container.audit.list_events(page_size=100))[0]]
    assert "signin.throttled" in types
    assert "signin.failed" in types
    assert "signin.succeeded" in types


async def test_suspension_is_idempotent_and_emits_events(container: IdContainer) -> None:
    """Suspend emits one UserSuspended; suspending again emits nothing; reinstate emits UserReinstated."""
    user = await container.users.sign_up("a@example.com", PASSWORD)
    _, tokens = await container.users.sign_in("a@example.com", PASSWORD)
    suspended = await container.users.suspend_user(ADMIN, user.id, "fraud")
    again = await container.users.suspend_user(ADMIN, user.id, "other")
    assert suspended.is_suspended
    assert again.suspension_reason == "fraud"
    assert await container.checker.check(tokens.access_token) is None
    with pytest.raises(FailedPrecondition) as exc:
        await container.users.sign_in("a@example.com", PASSWORD)
    assert exc.value.reason == "USER_SUSPENDED"
    await container.users.reinstate_user(ADMIN, user.id)
    assert await container.checker.check(tokens.access_token) is not None
    types = [e.type for e in await container.outbox.read(container.db, 0)]
    assert types.count("furima.id.v1.UserSuspended") == 1
    assert types.count("furima.id.v1.UserReinstated") == 1


async def test_get_user_owner_or_scope(container: IdContainer) -> None:
    """A user reads only themselves; id.users.read reads anyone; unknown is NOT_FOUND."""
    alice = await container.users.sign_up("a@example.com", PASSWORD)
    bob = await container.users.sign_up("b@example.com", PASSWORD)
    assert (await container.users.get_user(FakeCaller(alice.id), alice.id)).id == alice.id
    with pytest.raises(PermissionDenied):
        await container.users.get_user(FakeCaller(alice.id), bob.id)
    reader = FakeCaller("svc-payments", "svc-payments", frozenset({"id.users.read"}))
    assert (await container.users.get_user(reader, bob.id)).email == "b@example.com"
    with pytest.raises(NotFound):
        await container.users.get_user(reader, "usr_missing")
