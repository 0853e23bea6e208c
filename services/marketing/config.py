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
    holdout_salt: str = "global"
    """FURIMA_MARKETING_HOLDOUT_SALT: the global holdout's hash salt (changing it reshuffles who is held out)."""
    holdout_bps: int = 0
    """FURIMA_MARKETING_HOLDOUT_BPS: the share of all users no campaign or experiment reaches (basis points)."""
    worker_interval: float = 1.0
    """FURIMA_MARKETING_WORKER_INTERVAL_S: seconds between rounds of the grant queue, the campaign clock
    and the segment refresh (0: none in this process)."""

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
            holdout_salt=e.get("FURIMA_MARKETING_HOLDOUT_SALT") or d.holdout_salt,
            holdout_bps=_bps(number_from(e, "FURIMA_MARKETING_HOLDOUT_BPS", d.holdout_bps)),
            worker_interval=number_from(e, "FURIMA_MARKETING_WORKER_INTERVAL_S", d.worker_interval),
        )


def _bps(value: float) -> int:
    if not 0 <= value <= 10_000 or value != int(value):
        raise ValueError("FURIMA_MARKETING_HOLDOUT_BPS must be a whole number from 0 to 10000")
    return int(value)
