"""Idempotent development bootstrap: a signing key, the dev clients, demo users.

Secrets of confidential dev clients are generated once and kept in a JSON file (mode
0600) so `make token` and the other services' dev config keep working across restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from libs.errors import AlreadyExists
from services.id.container import IdContainer
from services.id.domain.clients import ClientKind, GrantType
from services.id.domain.scopes import ALL_SCOPES
from services.id.store import clients as client_repo

DEMO_PASSWORD = "furima-demo-password"  # noqa: S105 - the well-known demo password, documented
DEMO_USERS = (("alice@example.com", "Alice", "JP"), ("bob@example.com", "Bob", "JP"))

_CC = GrantType.CLIENT_CREDENTIALS.value
_EXCHANGE = GrantType.TOKEN_EXCHANGE.value
_CODE = GrantType.AUTHORIZATION_CODE.value
_REFRESH = GrantType.REFRESH_TOKEN.value
_SERVICE_COMMON = ("events.read", "id.users.read", "id.tokens.introspect")


@dataclass(frozen=True)
class DevClient:
    """A development client to register."""

    client_id: str
    name: str
    kind: ClientKind
    confidential: bool
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    redirect_uris: tuple[str, ...] = ()


DEV_CLIENTS = (
    DevClient(
        "furima-dev", "Development client (make token)", ClientKind.SERVICE, True, tuple(sorted(ALL_SCOPES)), (_CC,)
    ),
    DevClient(
        "furima-app",
        "furima app",
        ClientKind.FIRST_PARTY,
        False,
        (
            "profile",
            "id.authorize",
            "id.consents",
            "payments.read",
            "payments.balance.read",
            "tns.report",
            "tns.appeal",
            "marketing.read",
        ),
        (_CODE, _REFRESH),
        ("http://localhost/callback",),
    ),
    DevClient(
        "svc-payments",
        "Payments service",
        ClientKind.SERVICE,
        True,
        (
            *_SERVICE_COMMON,
            "payments.read",
            "payments.write",
            "payments.balance.read",
            "tns.moderate",
            "tns.risk",
            "tns.standing.read",
        ),
        (_CC, _EXCHANGE),
    ),
    DevClient(
        "svc-tns",
        "Trust & Safety service",
        ClientKind.SERVICE,
        True,
        (*_SERVICE_COMMON, "id.users.admin", "tns.moderate", "tns.review", "payments.read", "payments.write"),
        (_CC, _EXCHANGE),
    ),
    DevClient(
        "svc-marketing",
        "Marketing service",
        ClientKind.SERVICE,
        True,
        (
            *_SERVICE_COMMON,
            "marketing.read",
            "marketing.write",
            "marketing.events.write",
            "payments.write",
            "tns.moderate",
            "tns.standing.read",
        ),
        (_CC, _EXCHANGE),
    ),
    DevClient(
        "cs-console",
        "Customer-service console (review agents)",
        ClientKind.SERVICE,
        True,
        ("tns.review", "payments.review"),
        (_CC,),
    ),
    DevClient(
        "partner-demo",
        "Partner demo",
        ClientKind.THIRD_PARTY,
        True,
        ("profile", "payments.balance.read"),
        (_CODE, _REFRESH),
        ("https://partner.example/callback",),
    ),
)


def _load_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    clients = data.get("clients", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in clients.items()}


def _save_secrets(path: Path, secrets: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with 0600 from the start so the secrets are never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"clients": secrets}, out, indent=2, sort_keys=True)
    os.chmod(path, 0o600)


async def bootstrap(container: IdContainer, credentials_path: Path) -> dict[str, str]:
    """Ensure the key, dev clients and demo users exist; returns ``{client_id: secret}``."""
    await container.keyring.ensure_active()
    secrets = _load_secrets(credentials_path)
    for dev in DEV_CLIENTS:
        async with container.db.read() as conn:
            existing = await client_repo.get(conn, dev.client_id)
        if existing is not None:
            if existing.allowed_scopes != frozenset(dev.scopes):
                # The catalogue grew since the database was bootstrapped (a new service
                # joined): development clients follow it.
                async with container.db.transaction() as tx:
                    await client_repo.set_allowed_scopes(tx.conn, dev.client_id, frozenset(dev.scopes))
            continue
        try:
            _, secret = await container.clients.register_client(
                client_id=dev.client_id,
                name=dev.name,
                kind=dev.kind,
                confidential=dev.confidential,
                allowed_scopes=frozenset(dev.scopes),
                redirect_uris=list(dev.redirect_uris),
                grant_types=list(dev.grant_types),
                actor="bootstrap",
                client_secret=secrets.get(dev.client_id),
            )
        except AlreadyExists:
            continue  # another process bootstrapped it concurrently
        if secret:
            secrets[dev.client_id] = secret
    _save_secrets(credentials_path, secrets)
    for email, name, region in DEMO_USERS:
        with contextlib.suppress(AlreadyExists):
            await container.users.sign_up(email, DEMO_PASSWORD, name, region)
    return secrets
