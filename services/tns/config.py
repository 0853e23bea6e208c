"""Configuration of the TnS service, parsed once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from libs.config import number_from

DEFAULT_RULES = Path(__file__).resolve().parent / "rules" / "default.toml"


@dataclass(frozen=True)
class TnsConfig:
    """Settings of the Trust & Safety service."""

    database_url: str = "sqlite+aiosqlite:///var/tns.db"
    """FURIMA_TNS_DATABASE_URL: SQLite (embedded default) or PostgreSQL."""
    port: int = 50053
    """FURIMA_TNS_PORT."""
    issuer: str = "furima-id"
    """FURIMA_ISSUER: the ``iss`` tokens must carry."""
    id_target: str = "127.0.0.1:50051"
    """FURIMA_ID_TARGET: the ID service (JWKS, deny-list feed, suspensions, user events)."""
    client_id: str = "svc-tns"
    """FURIMA_TNS_CLIENT_ID: TnS's own client at the ID service."""
    client_secret: str = ""
    """FURIMA_TNS_CLIENT_SECRET (``make run`` passes the bootstrapped one)."""
    rules_path: Path = DEFAULT_RULES
    """FURIMA_TNS_RULES: the rule file in force."""
    rules_poll_interval: float = 2.0
    """FURIMA_TNS_RULES_POLL (seconds; 0 = reload only through ``ReloadRules``)."""
    model_path: Path | None = None
    """FURIMA_TNS_MODEL: the text-model artifact (default: the one shipped in the repo)."""
    case_lease: timedelta = timedelta(minutes=5)
    """FURIMA_TNS_CASE_LEASE (seconds): how long a claimed case stays with its agent."""
    rescan_window: timedelta = timedelta(days=7)
    """FURIMA_TNS_RESCAN_DAYS: how far back a rule change is re-scanned (in shadow)."""
    decision_batch_wait: float = 0.005
    """FURIMA_TNS_BATCH_WAIT_MS (milliseconds): how long the decision writer waits for
    more decisions before committing a batch, while decisions arrive together (bigger
    batches, a few ms more latency under load; a lone decision is not held)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TnsConfig:
        """Read the configuration from ``env`` (default: the process environment)."""
        e = os.environ if env is None else env
        d = cls()
        model = e.get("FURIMA_TNS_MODEL", "")
        return cls(
            database_url=e.get("FURIMA_TNS_DATABASE_URL") or d.database_url,
            port=int(number_from(e, "FURIMA_TNS_PORT", d.port)),
            issuer=e.get("FURIMA_ISSUER") or d.issuer,
            id_target=e.get("FURIMA_ID_TARGET") or d.id_target,
            client_id=e.get("FURIMA_TNS_CLIENT_ID") or d.client_id,
            client_secret=e.get("FURIMA_TNS_CLIENT_SECRET") or d.client_secret,
            rules_path=Path(e.get("FURIMA_TNS_RULES") or d.rules_path),
            rules_poll_interval=number_from(e, "FURIMA_TNS_RULES_POLL", d.rules_poll_interval),
            model_path=Path(model) if model else None,
            case_lease=timedelta(seconds=number_from(e, "FURIMA_TNS_CASE_LEASE", d.case_lease.total_seconds())),
            rescan_window=timedelta(days=number_from(e, "FURIMA_TNS_RESCAN_DAYS", d.rescan_window.days)),
            decision_batch_wait=number_from(e, "FURIMA_TNS_BATCH_WAIT_MS", d.decision_batch_wait * 1000) / 1000,
        )
