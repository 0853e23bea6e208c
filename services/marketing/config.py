"""Configuration of the marketing service, parsed once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from libs.config import number_from


@dataclass(frozen=True)
class MarketingConfig:
    """Settings of the marketing service."""

    database_url: str = "sqlite+aiosqlite:///var/marketing.db"
    """FURIMA_MARKETING_DATABASE_URL: SQLite (embedded default) or PostgreSQL."""
    port: int = 50054
    """FURIMA_MARKETING_PORT."""
    issuer: str = "furima-id"
    """FURIMA_ISSUER: the ``iss`` tokens must carry."""
    id_target: str = "127.0.0.1:50051"
    """FURIMA_ID_TARGET: the ID service (JWKS, deny-list feed, user events)."""
    client_id: str = "svc-marketing"
    """FURIMA_MARKETING_CLIENT_ID: marketing's own client at the ID service."""
    client_secret: str = ""
    """FURIMA_MARKETING_CLIENT_SECRET (``make run`` passes the bootstrapped one)."""
    payments_target: str = ""
    """FURIMA_PAYMENTS_TARGET: payments (points grants, payment events); empty: none."""
    tns_target: str = ""
    """FURIMA_TNS_TARGET: TnS (standing of users, restriction events); empty: none."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MarketingConfig:
        """Read the configuration from ``env`` (default: the process environment)."""
        e = os.environ if env is None else env
        d = cls()
        return cls(
            database_url=e.get("FURIMA_MARKETING_DATABASE_URL") or d.database_url,
            port=int(number_from(e, "FURIMA_MARKETING_PORT", d.port)),
            issuer=e.get("FURIMA_ISSUER") or d.issuer,
            id_target=e.get("FURIMA_ID_TARGET") or d.id_target,
            client_id=e.get("FURIMA_MARKETING_CLIENT_ID") or d.client_id,
            client_secret=e.get("FURIMA_MARKETING_CLIENT_SECRET") or d.client_secret,
            payments_target=e.get("FURIMA_PAYMENTS_TARGET", d.payments_target),
            tns_target=e.get("FURIMA_TNS_TARGET", d.tns_target),
        )
