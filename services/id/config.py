"""Configuration of the ID service, parsed once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from libs.config import int_from
from services.id.domain.passwords import Argon2Params


@dataclass(frozen=True)
class IdConfig:
    """Settings of the ID service."""

    database_url: str = "sqlite+aiosqlite:///var/id.db"
    """FURIMA_ID_DATABASE_URL: SQLite (embedded default) or PostgreSQL."""
    issuer: str = "furima-id"
    """FURIMA_ISSUER: the ``iss`` of every token; verifiers must agree."""
    access_token_ttl: timedelta = timedelta(seconds=900)
    """FURIMA_ID_ACCESS_TOKEN_TTL (seconds); also how long a retiring key stays published."""
    refresh_token_ttl: timedelta = timedelta(days=30)
    """FURIMA_ID_REFRESH_TOKEN_TTL (seconds)."""
    auth_code_ttl: timedelta = timedelta(seconds=600)
    """FURIMA_ID_AUTH_CODE_TTL (seconds)."""
    argon2: Argon2Params = field(default_factory=Argon2Params)
    """FURIMA_ID_ARGON2_TIME_COST / _MEMORY_COST (KiB) / _PARALLELISM."""
    default_client_id: str = "furima-app"
    """FURIMA_ID_DEFAULT_CLIENT: the first-party client SignIn uses when none is given."""
    port: int = 50051
    """FURIMA_ID_PORT."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdConfig:
        """Read the configuration from ``env`` (default: the process environment)."""
        e = os.environ if env is None else env
        d = cls()
        return cls(
            database_url=e.get("FURIMA_ID_DATABASE_URL") or d.database_url,
            issuer=e.get("FURIMA_ISSUER") or d.issuer,
            access_token_ttl=timedelta(seconds=int_from(e, "FURIMA_ID_ACCESS_TOKEN_TTL", 900)),
            refresh_token_ttl=timedelta(seconds=int_from(e, "FURIMA_ID_REFRESH_TOKEN_TTL", 30 * 86400)),
            auth_code_ttl=timedelta(seconds=int_from(e, "FURIMA_ID_AUTH_CODE_TTL", 600)),
            argon2=Argon2Params(
                time_cost=int_from(e, "FURIMA_ID_ARGON2_TIME_COST", d.argon2.time_cost),
                memory_cost=int_from(e, "FURIMA_ID_ARGON2_MEMORY_COST", d.argon2.memory_cost),
                parallelism=int_from(e, "FURIMA_ID_ARGON2_PARALLELISM", d.argon2.parallelism),
            ),
            default_client_id=e.get("FURIMA_ID_DEFAULT_CLIENT") or d.default_client_id,
            port=int_from(e, "FURIMA_ID_PORT", d.port),
        )
