"""Token endpoint grants, authorization, revocation, introspection, keys, consent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jwt
import pytest

from libs.clock import FrozenClock
from libs.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from libs.storage import Database, upgrade
from services.id.config import IdConfig
from services.id.container import MIGRATIONS, IdContainer, assemble
from services.id.domain import keys as keys_domain
from services.id.domain import pkce
from services.id.domain.tokens import ACCESS_TOKEN_TYPE
from services.id.service.grants import TokenRequest
from services.id.tests.conftest import FAST_ARGON2, PASSWORD, FakeCaller

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


async def _signed_in(c: IdContainer) -> tuple[str, str, str]:
    user = await c.users.sign_up("a@example.com", PASSWORD)
    _, tokens = await c.users.sign_in("a@example.com", PASSWORD)
    return user.id, tokens.access_token, tokens.refresh_token


async def _partner_tokens(c: IdContainer, user_id: str) -> tuple[str, str]:
    grant = await c.oauth.authorize(
        FakeCaller(user_id),
        client_id="partner-demo",
        redirect_uri="https://partner.example/cb",
        scope="profile",
        state="s1",
    )
    tokens = await c.grants.token(
        TokenRequest(
            "authorization_code",
            "partner-demo",
            "partner-secret",
            code=grant.code,
            redirect_uri="https://partner.example/cb",
        )
    )
    return tokens.access_token, tokens.refresh_token


async def test_client_credentials_token_shape(container: IdContainer) -> None:
    """A service token has the agreed claims, header and audience list."""
    tokens = await container.grants.token(
        TokenRequest(
            "client_credentials", "svc-payments", "svc-secret", scope="payments.read", audience=("furima.payments",)
        )
    )
    header = jwt.get_unverified_header(tokens.access_token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == "svc-payments"
    assert claims["aud"] == ["furima.payments"]
    assert claims["scope"] == "payments.read"
    assert claims["jti"].startswith("at_")
    assert claims["iss"] == "furima-id"
    assert not tokens.refresh_token


async def test_client_credentials_errors(container: IdContainer) -> None:
    """Bad secret, excess scope, unknown audience and unknown grant map to OAuth reasons."""
    with pytest.raises(Unauthenticated) as e1:
        await container.grants.token(TokenRequest("client_credentials", "svc-payments", "nope"))
    with pytest.raises(PermissionDenied) as e2:
        await container.grants.token(
            TokenRequest("client_credentials", "svc-payments", "svc-secret", scope="tns.review")
        )
    with pytest.raises(InvalidArgument) as e3:
        await container.grants.token(
            TokenRequest("client_credentials", "svc-payments", "svc-secret", audience=("evil",))
        )
    with pytest.raises(InvalidArgument) as e4:
        await container.grants.token(TokenRequest("password", "svc-payments", "svc-secret"))
    with pytest.raises(PermissionDenied) as e5:
        await container.grants.token(TokenRequest("client_credentials", "partner-demo", "partner-secret"))
    assert [e.value.reason for e in (e1, e2, e3, e4, e5)] == [
        "INVALID_CLIENT",
        "INVALID_SCOPE",
        "INVALID_TARGET",
        "UNSUPPORTED_GRANT_TYPE",
        "UNAUTHORIZED_CLIENT",
    ]


async def test_refresh_rotation_and_reuse_revokes_family(container: IdContainer) -> None:
    """Each refresh rotates; replaying a spent token kills the whole family."""
    _, access, r1 = await _signed_in(container)
    t2 = await container.grants.token(TokenRequest("refresh_token", "furima-app", refresh_token=r1))
    assert t2.refresh_token
    assert t2.refresh_token != r1
    with pytest.raises(PermissionDenied) as exc:
        await container.grants.token(TokenRequest("refresh_token", "furima-app", refresh_token=r1))
    assert exc.value.reason == "INVALID_GRANT"
    with pytest.raises(PermissionDenied):
        await container.grants.token(TokenRequest("refresh_token", "furima-app", refresh_token=t2.refresh_token))
    # Access tokens of the session die with it (via sid).
    assert await container.checker.check(access) is None
    assert await container.checker.check(t2.access_token) is None
    events = await container.outbox.read(container.db, 0, ["furima.id.v1.TokenFamilyRevoked"])
    assert len(events) == 1
    types = [e.type for e in (await container.audit.list_events(page_size=50))[0]]
    assert "token.refresh_reused" in types


async def test_refresh_may_only_narrow_scope(container: IdContainer) -> None:
    """A refresh can ask for fewer scopes, never more."""
    _, _, r1 = await _signed_in(container)
    t2 = await container.grants.token(TokenRequest("refresh_token", "furima-app", refresh_token=r1, scope="profile"))
    assert t2.scope == "profile"
    with pytest.raises(PermissionDenied) as exc:
        await container.grants.token(
            TokenRequest("refresh_token", "furima-app", refresh_token=t2.refresh_token, scope="tns.review")
        )
    assert exc.value.reason == "INVALID_SCOPE"


async def test_authorization_code_with_pkce_single_use(container: IdContainer) -> None:
    """A public client redeems a PKCE code once; the second use fails and ends the session."""
    user_id, _, _ = await _signed_in(container)
    caller = FakeCaller(user_id)
    with pytest.raises(InvalidArgument):
        await container.oauth.authorize(
            caller, client_id="furima-app", redirect_uri="http://localhost/cb", scope="profile"
        )
    grant = await container.oauth.authorize(
        caller,
        client_id="furima-app",
        redirect_uri="http://localhost/cb",
        scope="profile",
        code_challenge=pkce.s256_challenge(VERIFIER),
        code_challenge_method="S256",
    )
    req = TokenRequest(
        "authorization_code", "furima-app", code=grant.code, redirect_uri="http://localhost/cb", code_verifier="x" * 43
    )
    with pytest.raises(PermissionDenied):
        await container.grants.token(req)
    ok = TokenRequest(
        "authorization_code", "furima-app", code=grant.code, redirect_uri="http://localhost/cb", code_verifier=VERIFIER
    )
    tokens = await container.grants.token(ok)
    assert tokens.scope == "profile"
    assert tokens.refresh_token
    with pytest.raises(PermissionDenied):
        await container.grants.token(ok)
    assert await container.checker.check(tokens.access_token) is None


async def test_authorize_refuses_unregistered_redirect_and_scopes(container: IdContainer) -> None:
    """Redirect URIs match exactly and scopes stay within the client's allowed set."""
    user_id, _, _ = await _signed_in(container)
    with pytest.raises(InvalidArgument) as exc:
        await container.oauth.authorize(
            FakeCaller(user_id), client_id="partner-demo", redirect_uri="https://partner.example/cb/", scope="profile"
        )
    assert exc.value.violations[0].field == "redirect_uri"
    with pytest.raises(PermissionDenied):
        await container.oauth.authorize(
            FakeCaller(user_id),
            client_id="partner-demo",
            redirect_uri="https://partner.example/cb",
            scope="id.users.admin",
        )


async def test_consent_revoke_kills_partner_tokens(container: IdContainer) -> None:
    """Withdrawing consent revokes the client's sessions and emits ConsentRevoked."""
    user_id, _, _ = await _signed_in(container)
    access, refresh = await _partner_tokens(container, user_id)
    consents, _ = await container.consents.list_consents(FakeCaller(user_id), page_size=10)
    assert [c.client_id for c in consents] == ["partner-demo"]
    await container.consents.revoke_consent(FakeCaller(user_id), "partner-demo")
    await container.consents.revoke_consent(FakeCaller(user_id), "partner-demo")
    assert await container.checker.check(access) is None
    with pytest.raises(PermissionDenied):
        await container.grants.token(
            TokenRequest("refresh_token", "partner-demo", "partner-secret", refresh_token=refresh)
        )
    types = [e.type for e in await container.outbox.read(container.db, 0)]
    assert types.count("furima.id.v1.ConsentRevoked") == 1
    assert "furima.id.v1.ConsentGranted" in types
    assert (await container.consents.list_consents(FakeCaller(user_id), page_size=10))[0] == []


async def test_token_exchange_adds_actor(container: IdContainer) -> None:
    """A service exchanges a user token for one with act.sub and intersected scopes."""
    user_id, access, _ = await _signed_in(container)
    tokens = await container.grants.token(
        TokenRequest(
            EXCHANGE,
            "svc-payments",
            "svc-secret",
            scope="payments.read profile",
            subject_token=access,
            subject_token_type=ACCESS_TOKEN_TYPE,
        )
    )
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["sub"] == user_id
    assert claims["client_id"] == "svc-payments"
    assert claims["act"] == {"sub": "svc-payments"}
    assert tokens.issued_token_type == ACCESS_TOKEN_TYPE
    assert set(claims["scope"].split()) == {"payments.read", "profile"}
    with pytest.raises(PermissionDenied):
        await container.grants.token(
            TokenRequest(
                EXCHANGE, "svc-payments", "svc-secret", subject_token="junk", subject_token_type=ACCESS_TOKEN_TYPE
            )
        )


async def test_revoke_access_and_refresh_tokens(container: IdContainer) -> None:
    """RFC 7009: own tokens are revoked with events; foreign and junk tokens succeed silently."""
    user_id, _, _ = await _signed_in(container)
    access, refresh = await _partner_tokens(container, user_id)
    await container.oauth.revoke(token="junk", client_id="partner-demo", client_secret="partner-secret")
    await container.oauth.revoke(token=access, client_id="svc-payments", client_secret="svc-secret")
    assert await container.checker.check(access) is not None
    await container.oauth.revoke(token=access, client_id="partner-demo", client_secret="partner-secret")
    assert (await container.oauth.introspect(access)).token is None
    await container.oauth.revoke(token=refresh, client_id="partner-demo", client_secret="partner-secret")
    with pytest.raises(PermissionDenied):
        await container.grants.token(
            TokenRequest("refresh_token", "partner-demo", "partner-secret", refresh_token=refresh)
        )
    types = [e.type for e in await container.outbox.read(container.db, 0)]
    assert "furima.id.v1.TokenRevoked" in types
    assert "furima.id.v1.TokenFamilyRevoked" in types
    with pytest.raises(Unauthenticated):
        await container.oauth.revoke(token=access, client_id="partner-demo", client_secret="wrong")


async def test_key_rotation_keeps_old_key_published(container: IdContainer, clock: FrozenClock) -> None:
    """After rotation the new kid signs, the old key stays in JWKS until tokens expire."""
    _, old_access, _ = await _signed_in(container)
    old_kid = jwt.get_unverified_header(old_access)["kid"]
    new = await container.keyring.rotate("admin")
    _, tokens = await container.users.sign_in("a@example.com", PASSWORD)
    assert jwt.get_unverified_header(tokens.access_token)["kid"] == new.kid
    assert {k["kid"] for k in await container.oauth.jwks()} == {old_kid, new.kid}
    assert await container.checker.check(old_access) is not None
    clock.advance((container.config.access_token_ttl + keys_domain.RETIRE_MARGIN).total_seconds() + 1)
    assert {k["kid"] for k in await container.oauth.jwks()} == {new.kid}
    assert await container.keyring.public_key(old_kid) is None


async def test_introspect_inactive_is_not_an_error(container: IdContainer) -> None:
    """Garbage and refresh tokens are simply inactive (expired ones: the next test); a live token is active."""
    _, access, refresh = await _signed_in(container)
    assert (await container.oauth.introspect("garbage")).token is None
    assert (await container.oauth.introspect(refresh)).token is None
    assert (await container.oauth.introspect(access)).token is not None


async def test_expired_access_token_is_inactive(container: IdContainer, clock: FrozenClock) -> None:
    """Past exp (plus leeway) a token no longer introspects as active."""
    _, access, _ = await _signed_in(container)
    clock.advance(container.config.access_token_ttl.total_seconds() + 6)
    assert (await container.oauth.introspect(access)).token is None


async def test_signing_without_an_active_key_is_unavailable_not_a_hang(tmp_path: Path) -> None:
    """With no ACTIVE key, signing inside a write transaction fails fast with UNAVAILABLE."""
    config = IdConfig(database_url=f"sqlite+aiosqlite:///{tmp_path}/nokey.db", argon2=FAST_ARGON2)
    db = Database(config.database_url)
    await upgrade(db, MIGRATIONS)
    bare = assemble(config, db)
    try:
        async with db.transaction():
            with pytest.raises(Unavailable):
                await asyncio.wait_for(bare.keyring.sign({"sub": "x"}), 5)
    finally:
        await db.dispose()


async def test_a_service_token_cannot_be_exchanged(container: IdContainer) -> None:
    """Token exchange takes only a user's token: one service cannot turn another's token into its own."""
    service_token = (
        await container.grants.token(TokenRequest("client_credentials", "svc-payments", "svc-secret"))
    ).access_token
    with pytest.raises(PermissionDenied) as caught:
        await container.grants.token(
            TokenRequest(
                EXCHANGE,
                "svc-payments",
                "svc-secret",
                subject_token=service_token,
                subject_token_type=ACCESS_TOKEN_TYPE,
            )
        )
    assert caught.value.reason == "INVALID_GRANT"
