"""Helpers for tests across the monorepo: throw-away databases and token forging."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import make_url

POSTGRES_ENV = "FURIMA_TEST_POSTGRES_URL"
POSTGRES_SKIP_REASON = (
    f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); not set"
)


def postgres_admin_url() -> str | None:
    """The PostgreSQL URL tests may create databases through, if configured."""
    return os.environ.get(POSTGRES_ENV) or None


@asynccontextmanager
async def temporary_postgres_database(admin_url: str) -> AsyncIterator[str]:
    """Create an empty database for one test and drop it afterwards; yields its URL."""
    import asyncpg  # only needed when PostgreSQL is configured

    url = make_url(admin_url)
    name = f"furima_test_{secrets.token_hex(6)}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class Forger:
    """Signs tokens with a key of its own, to prove verifiers refuse what they should."""

    def __init__(self, kid: str = "forged") -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, algorithm: str = "ES256") -> str:
        """A JWT with ``claims`` signed by this forger's key."""
        return jwt.encode(claims, self.key, algorithm=algorithm, headers={"kid": kid or self.kid, "typ": "at+jwt"})


def claims(
    *,
    issuer: str = "furima-id",
    audience: list[str] | None = None,
    subject: str = "usr_test",
    scope: str = "profile",
    ttl: int = 300,
    **extra: Any,
) -> dict[str, Any]:
    """Well-formed access-token claims, for tests that sign their own tokens."""
    now = int(time.time())
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience or ["furima.testing"],
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": f"at_{secrets.token_hex(8)}",
        "client_id": "test-client",
        "scope": scope,
        **extra,
    }
