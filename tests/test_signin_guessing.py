"""Password guessing: concurrency does not get around the throttle, long e-mails are no loophole."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
from furima.id.v1 import user_service_pb2

from services.id.bootstrap import DEMO_PASSWORD
from tests.helpers import ALICE, BOB, rpc_error, users
from tests.stack import Stack


async def test_concurrent_wrong_passwords_are_throttled(still_stack: Stack) -> None:
    """Forty simultaneous guesses: only the free attempts reach the password check, the rest are throttled."""
    stub = users(still_stack)
    wrong = user_service_pb2.SignInRequest(email=ALICE, password="wrong-password-123")
    errors = await asyncio.gather(*(rpc_error(stub.SignIn(wrong)) for _ in range(40)))
    codes = Counter(e["code"] for e in errors)
    assert codes[grpc.StatusCode.UNAUTHENTICATED] <= 3
    assert codes[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 37


async def test_successful_sign_in_is_not_counted_against_the_source(stack: Stack) -> None:
    """Many right-password sign-ins in a row from one address are never throttled."""
    stub = users(stack)
    for _ in range(6):
        reply = await stub.SignIn(user_service_pb2.SignInRequest(email=ALICE, password=DEMO_PASSWORD))
        assert reply.tokens.access_token


async def test_wrong_password_for_a_long_email_is_unauthenticated(stack: Stack) -> None:
    """A 250-character address (valid length) with a wrong password is UNAUTHENTICATED, never INTERNAL."""
    email = "a" * 238 + "@example.com"
    error = await rpc_error(
        users(stack).SignIn(user_service_pb2.SignInRequest(email=email, password="wrong-password-123"))
    )
    assert (error["code"], error["reason"]) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


async def test_overlong_email_is_invalid_argument(stack: Stack) -> None:
    """An e-mail longer than 254 characters is refused at the edge with a field violation."""
    error = await rpc_error(
        users(stack).SignIn(user_service_pb2.SignInRequest(email="a" * 300 + "@x.io", password="whatever-123"))
    )
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT
    assert "email" in error["violations"]  # type: ignore[operator]


async def test_people_behind_one_address_sign_in_together(stack: Stack) -> None:
    """Several right-password sign-ins at once from one address (an office, a carrier) all succeed."""
    stub = users(stack)
    requests = [user_service_pb2.SignInRequest(email=email, password=DEMO_PASSWORD) for email in [ALICE, BOB] * 3]
    replies = await asyncio.gather(*(stub.SignIn(r) for r in requests))
    assert all(reply.tokens.access_token for reply in replies)
