"""Migrations, bootstrap and servicers wired together."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from furima.id.v1 import oauth_service_pb2, user_service_pb2
from sqlalchemy.engine import Connection

from libs.auth import Principal, TokenVerifier, reset_principal, set_principal
from libs.errors import PermissionDenied
from services.id.api.oauth import OAuthServicer
from services.id.api.users import UserServicer
from services.id.app import servicers
from services.id.bootstrap import DEMO_PASSWORD, bootstrap
from services.id.container import IdContainer
from services.id.service.grants import TokenRequest
from services.id.store.tables import metadata


class _Ctx:
    """The little of a ServicerContext the servicers use."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"


async def test_migration_matches_tables(container: IdContainer) -> None:
    """The hand-written migration creates exactly what tables.py declares."""

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with container.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_bootstrap_is_idempotent_and_keeps_secrets(container: IdContainer, tmp_path: Path) -> None:
    """Running bootstrap twice keeps the same secrets (file mode 0600) and dev clients work."""
    path = tmp_path / "dev-credentials.json"
    first = await bootstrap(container, path)
    second = await bootstrap(container, path)
    assert first == second
    assert "furima-dev" in first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = await container.grants.token(TokenRequest("client_credentials", "furima-dev", first["furima-dev"]))
    assert "id.keys.admin" in tokens.scope.split()
    _, signed_in = await container.users.sign_in("alice@example.com", DEMO_PASSWORD)
    assert signed_in.refresh_token


async def test_servicers_cover_every_service(container: IdContainer) -> None:
    """app.servicers registers the six ID services."""
    names = {descriptor.full_name for _, _, descriptor in servicers(container)}
    assert names == {
        f"furima.id.v1.{n}"
        for n in ("UserService", "OAuthService", "ClientService", "ConsentService", "KeyService", "AuditService")
    }


async def test_servicers_map_requests_and_principal(container: IdContainer) -> None:
    """SignUp/SignIn/GetUser/Introspect round-trip through the servicers and the principal."""
    users = UserServicer(container.users)
    ctx = _Ctx()
    up = await users.SignUp(user_service_pb2.SignUpRequest(email="c@example.com", password="p" * 12), ctx)  # type: ignore[arg-type]
    signed = await users.SignIn(user_service_pb2.SignInRequest(email="c@example.com", password="p" * 12), ctx)  # type: ignore[arg-type]
    assert signed.tokens.token_type == "Bearer"
    now = datetime.now(UTC)
    me = Principal(up.user.id, "furima-app", frozenset({"profile"}), ("furima.id",), "at_x", now, now)
    token = set_principal(me)
    try:
        got = await users.GetUser(user_service_pb2.GetUserRequest(user_id=up.user.id), ctx)  # type: ignore[arg-type]
        assert got.user.email == "c@example.com"
        with pytest.raises(PermissionDenied):
            await users.GetUser(user_service_pb2.GetUserRequest(user_id="usr_other"), ctx)  # type: ignore[arg-type]
    finally:
        reset_principal(token)
    oauth = OAuthServicer(container.grants, container.oauth)
    active = await oauth.Introspect(oauth_service_pb2.IntrospectRequest(token=signed.tokens.access_token), ctx)  # type: ignore[arg-type]
    inactive = await oauth.Introspect(oauth_service_pb2.IntrospectRequest(token="nope"), ctx)  # type: ignore[arg-type]
    assert active.active
    assert active.sub == up.user.id
    assert not inactive.active
    jwks = await oauth.GetJwks(oauth_service_pb2.GetJwksRequest(), ctx)  # type: ignore[arg-type]
    assert jwks.keys[0].crv == "P-256"


async def test_shared_verifier_accepts_our_tokens(container: IdContainer) -> None:
    """libs.auth.TokenVerifier, resolving keys from our key ring, accepts an exchanged token."""
    await container.users.sign_up("d@example.com", "p" * 12)
    _, tokens = await container.users.sign_in("d@example.com", "p" * 12)
    exchanged = await container.grants.token(
        TokenRequest(
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "svc-payments",
            "svc-secret",
            subject_token=tokens.access_token,
            subject_token_type="urn:ietf:params:oauth:token-type:access_token",
        )
    )
    verifier = TokenVerifier(container.config.issuer, "furima.payments", container.keyring)
    principal = await verifier.verify(exchanged.access_token)
    assert principal.actor == "svc-payments"
    assert principal.is_user
    assert principal.session_id
