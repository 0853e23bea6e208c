"""Configuration of the payments service, parsed once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from libs.config import number_from


@dataclass(frozen=True)
class PaymentsConfig:
    """Settings of the payments service."""

    database_url: str = "sqlite+aiosqlite:///var/payments.db"
    """FURIMA_PAYMENTS_DATABASE_URL: SQLite (embedded default) or PostgreSQL."""
    port: int = 50052
    """FURIMA_PAYMENTS_PORT."""
    issuer: str = "furima-id"
    """FURIMA_ISSUER: the ``iss`` tokens must carry."""
    id_target: str = "127.0.0.1:50051"
    """FURIMA_ID_TARGET: the ID service (JWKS, deny-list feed)."""
    client_id: str = "svc-payments"
    """FURIMA_PAYMENTS_CLIENT_ID: the payments service's own client at the ID service."""
    client_secret: str = ""
    """FURIMA_PAYMENTS_CLIENT_SECRET (``make run`` passes the bootstrapped one)."""
    idempotency_retention: timedelta = timedelta(hours=48)
    """FURIMA_PAYMENTS_IDEMPOTENCY_HOURS: how long keys are kept (never less than 24 hours)."""
    points_sweep_interval: float = 60.0
    """FURIMA_PAYMENTS_POINTS_SWEEP_S: seconds between housekeeping rounds — points expiry,
    idempotency keys past retention (0: none in this process)."""
    tns_target: str = ""
    """FURIMA_TNS_TARGET (from the environment: ``127.0.0.1:50053``): the TnS service whose
    standing changes freeze and thaw wallets; empty: follow none (tests without TnS)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PaymentsConfig:
        """Read the configuration from ``env`` (default: the process environment)."""
        e = os.environ if env is None else env
        d = cls()
        hours = number_from(e, "FURIMA_PAYMENTS_IDEMPOTENCY_HOURS", d.idempotency_retention.total_seconds() / 3600)
        if hours < 24:
            raise ValueError("FURIMA_PAYMENTS_IDEMPOTENCY_HOURS must be at least 24 (the contract promises a day)")
        return cls(
            database_url=e.get("FURIMA_PAYMENTS_DATABASE_URL") or d.database_url,
            port=int(number_from(e, "FURIMA_PAYMENTS_PORT", d.port)),
            issuer=e.get("FURIMA_ISSUER") or d.issuer,
            id_target=e.get("FURIMA_ID_TARGET") or d.id_target,
            client_id=e.get("FURIMA_PAYMENTS_CLIENT_ID") or d.client_id,
            client_secret=e.get("FURIMA_PAYMENTS_CLIENT_SECRET") or d.client_secret,
            idempotency_retention=timedelta(hours=hours),
            points_sweep_interval=number_from(e, "FURIMA_PAYMENTS_POINTS_SWEEP_S", d.points_sweep_interval),
            tns_target=e.get("FURIMA_TNS_TARGET", "127.0.0.1:50053"),
        )
