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
    standing changes freeze and thaw wallets and whose RiskService assesses payments;
    empty: neither (tests without TnS; payments are then unassessed, see below)."""
    risk_fail_open_max: int = 10_000
    """FURIMA_PAYMENTS_RISK_FAIL_OPEN_MAX: when TnS cannot be reached, payments up to this
    amount (minor units) are authorized unassessed; larger ones fail closed (UNAVAILABLE)."""
    risk_timeout: float = 1.0
    """FURIMA_PAYMENTS_RISK_TIMEOUT_S: the deadline of one AssessTransaction call."""
    batch_linger: float = 0.003
    """FURIMA_PAYMENTS_BATCH_LINGER_MS: while other calls are on their way, how long a
    group commit, or a batch of risk assessments, waits for them to join (a lone call
    never waits); 0: never."""
    fee_bps: int = 1000
    """FURIMA_PAYMENTS_FEE_BPS: the platform fee on completion, in basis points (10%)."""
    hold_hours: float = 168.0
    """FURIMA_PAYMENTS_HOLD_HOURS: how long an uncaptured authorization holds funds."""
    payout_fee: int = 200
    """FURIMA_PAYMENTS_PAYOUT_FEE: the fee of a withdrawal to a bank (minor units)."""
    bank_database_url: str = "sqlite+aiosqlite:///var/bank.db"
    """FURIMA_BANK_DATABASE_URL: the simulated bank's own books (a separate database)."""
    bank_latency_ms: float = 20.0
    """FURIMA_BANK_LATENCY_MS: the simulated bank's answer time."""
    bank_failure_rate: float = 0.0
    """FURIMA_BANK_FAILURE_RATE: share of bank transfers the simulated bank rejects."""
    bank_timeout_rate: float = 0.0
    """FURIMA_BANK_TIMEOUT_RATE: share of calls whose answer is lost (the bank may have
    acted); the saga asks again by reference."""
    saga_interval: float = 1.0
    """FURIMA_PAYMENTS_SAGA_INTERVAL_S: seconds between rounds of the bank-transfer runner
    (0: none in this process)."""

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
            risk_fail_open_max=int(number_from(e, "FURIMA_PAYMENTS_RISK_FAIL_OPEN_MAX", d.risk_fail_open_max)),
            risk_timeout=number_from(e, "FURIMA_PAYMENTS_RISK_TIMEOUT_S", d.risk_timeout),
            batch_linger=number_from(e, "FURIMA_PAYMENTS_BATCH_LINGER_MS", d.batch_linger * 1000) / 1000,
            fee_bps=int(number_from(e, "FURIMA_PAYMENTS_FEE_BPS", d.fee_bps)),
            hold_hours=number_from(e, "FURIMA_PAYMENTS_HOLD_HOURS", d.hold_hours),
            payout_fee=int(number_from(e, "FURIMA_PAYMENTS_PAYOUT_FEE", d.payout_fee)),
            bank_database_url=e.get("FURIMA_BANK_DATABASE_URL") or d.bank_database_url,
            bank_latency_ms=number_from(e, "FURIMA_BANK_LATENCY_MS", d.bank_latency_ms),
            bank_failure_rate=number_from(e, "FURIMA_BANK_FAILURE_RATE", d.bank_failure_rate),
            bank_timeout_rate=number_from(e, "FURIMA_BANK_TIMEOUT_RATE", d.bank_timeout_rate),
            saga_interval=number_from(e, "FURIMA_PAYMENTS_SAGA_INTERVAL_S", d.saga_interval),
        )
