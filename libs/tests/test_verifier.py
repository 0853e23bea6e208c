"""Local token verification: what is accepted, and every way a bad token is refused."""

from __future__ import annotations

import hmac
import json
import time
from hashlib import sha256

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from furima.auth.v1 import options_pb2
from furima.events.v1 import events_pb2
from furima.id.v1 import events_pb2 as id_events
from google.protobuf import any_pb2

from libs.auth import Authorizer, DenyList, Principal, StaticKeys, TokenVerifier
from libs.auth import _verifier as verifier_module
from libs.auth._authorizer import UNDECIDED
from libs.errors import PermissionDenied, Unauthenticated
from libs.testing import Forger, claims

AUD = "furima.testing"


@pytest.fixture
def issuer_key() -> Forger:
    return Forger(kid="k1")


@pytest.fixture
def verifier(issuer_key: Forger) -> TokenVerifier:
    return TokenVerifier("furima-id", AUD, StaticKeys({"k1": issuer_key.key.public_key()}), DenyList())


async def test_valid_token_yields_principal(verifier: TokenVerifier, issuer_key: Forger) -> None:
    """A well-formed token signed by a published key gives its subject, client and scopes."""
    token = issuer_key.sign(claims(subject="usr_1", scope="profile payments.read", act={"sub": "svc-x"}, sid="fam1"))
    principal = await verifier.verify(token)
    assert principal.subject == "usr_1"
    assert principal.is_user
    assert principal.scopes == {"profile", "payments.read"}
    assert principal.actor == "svc-x"
    assert principal.session_id == "fam1"


def _hs256_with_public_key(key: Forger) -> str:
    public_pem = key.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # PyJWT refuses PEM keys as HMAC secrets; build the token by hand as an attacker would.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","kid":"k1","typ":"at+jwt"}')
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    signature = hmac.new(public_pem, header + b"." + body, sha256).digest()
    return (header + b"." + body + b"." + jwt.utils.base64url_encode(signature)).decode()


def _alg_none() -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","kid":"k1"}')
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    return (header + b"." + body + b".").decode()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("garbage", "TOKEN_MALFORMED"),
        ("expired", "TOKEN_EXPIRED"),
        ("wrong_audience", "TOKEN_AUDIENCE"),
        ("wrong_issuer", "TOKEN_ISSUER"),
        ("other_key_same_kid", "TOKEN_INVALID"),
        ("unknown_kid", "TOKEN_UNKNOWN_KEY"),
        ("alg_none", "TOKEN_ALGORITHM"),
        ("hs256_public_key", "TOKEN_ALGORITHM"),
        ("not_yet_valid", "TOKEN_INVALID"),
        ("missing_jti", "TOKEN_INVALID"),
    ],
)
async def test_bad_tokens_are_refused(verifier: TokenVerifier, issuer_key: Forger, name: str, reason: str) -> None:
    """Each kind of bad token is refused as unauthenticated, with a reason saying why."""
    now = int(time.time())
    other = Forger(kid="k1")
    tokens = {
        "garbage": "not-a-jwt",
        "expired": issuer_key.sign(claims(exp=now - 3600, iat=now - 7200, nbf=now - 7200)),
        "wrong_audience": issuer_key.sign(claims(audience=["furima.payments"])),
        "wrong_issuer": issuer_key.sign(claims(issuer="evil-id")),
        "other_key_same_kid": other.sign(claims()),
        "unknown_kid": issuer_key.sign(claims(), kid="nope"),
        "alg_none": _alg_none(),
        "hs256_public_key": _hs256_with_public_key(issuer_key),
        "not_yet_valid": issuer_key.sign(claims(nbf=now + 3600)),
        "missing_jti": issuer_key.sign({k: v for k, v in claims().items() if k != "jti"}),
    }
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(tokens[name])
    assert caught.value.reason == reason


def _event(sequence: int, payload: object) -> events_pb2.Event:
    packed = any_pb2.Any()
    packed.Pack(payload)  # type: ignore[arg-type]
    return events_pb2.Event(id=f"evt_{sequence}", sequence=sequence, payload=packed)


async def test_suspension_denies_cached_token_and_reinstatement_restores(
    verifier: TokenVerifier, issuer_key: Forger
) -> None:
    """A suspension event refuses a token already verified (and cached); reinstatement lifts it."""
    token = issuer_key.sign(claims(subject="usr_9"))
    await verifier.verify(token)
    assert verifier.denylist is not None
    verifier.denylist.apply(_event(1, id_events.UserSuspended(user_id="usr_9")))
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "TOKEN_REVOKED"
    verifier.denylist.apply(_event(2, id_events.UserReinstated(user_id="usr_9")))
    assert (await verifier.verify(token)).subject == "usr_9"
    assert verifier.denylist.position == 2


async def test_revoked_jti_session_and_consent_are_denied(verifier: TokenVerifier, issuer_key: Forger) -> None:
    """Revoking a token id, a session (refresh family) or a consent refuses the matching tokens only."""
    by_jti = issuer_key.sign(claims(jti="at_a"))
    by_session = issuer_key.sign(claims(sid="fam_1"))
    by_consent = issuer_key.sign(claims(subject="usr_c", client_id="partner"))
    untouched = issuer_key.sign(claims(subject="usr_c", client_id="other"))
    assert verifier.denylist is not None
    revoked = id_events.TokenRevoked(jti="at_a")
    revoked.expires_at.FromSeconds(int(time.time()) + 600)
    verifier.denylist.apply(_event(1, revoked))
    verifier.denylist.apply(_event(2, id_events.TokenFamilyRevoked(family_id="fam_1")))
    consent = id_events.ConsentRevoked(user_id="usr_c", client_id="partner")
    consent.revoked_at.FromSeconds(int(time.time()) + 1)
    verifier.denylist.apply(_event(3, consent))
    for token in (by_jti, by_session, by_consent):
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)
    assert (await verifier.verify(untouched)).client_id == "other"


async def test_cached_principal_only_for_tokens_verify_would_accept(
    verifier: TokenVerifier, issuer_key: Forger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cached() answers without awaiting for a verified, unexpired, undenied token, and changes nothing."""
    token = issuer_key.sign(claims(subject="usr_7", ttl=60))
    assert verifier.cached(token) is None  # never verified
    principal = await verifier.verify(token)
    assert verifier.cached(token) is principal
    assert verifier.denylist is not None
    verifier.denylist.apply(_event(1, id_events.UserSuspended(user_id="usr_7")))
    assert verifier.cached(token) is None
    verifier.denylist.apply(_event(2, id_events.UserReinstated(user_id="usr_7")))
    assert verifier.cached(token) is principal
    monkeypatch.setattr(verifier_module, "epoch_seconds", lambda: time.time() + 60 + verifier.leeway + 1)
    assert verifier.cached(token) is None  # expired: left for verify to refuse (and forget)
    assert verifier.cached(token) is None
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "TOKEN_EXPIRED"


def _metadata(header: str | bytes | None) -> list[tuple[str, str | bytes]]:
    return [("user-agent", "test")] + ([("authorization", header)] if header is not None else [])


async def test_cached_authorize_decides_only_what_authorize_would_accept(
    verifier: TokenVerifier, issuer_key: Forger
) -> None:
    """Anonymous public calls and cached tokens with a scope are decided at once; everything else is UNDECIDED."""
    authorizer = Authorizer(verifier)
    public = options_pb2.AccessRule(public=True)
    scoped = options_pb2.AccessRule(scopes=["testing.echo", "testing.admin"])
    token = issuer_key.sign(claims(scope="testing.echo", subject="usr_8"))
    other = issuer_key.sign(claims(scope="profile", subject="usr_8"))
    in_public, in_scoped = authorizer.cached_authorize(public), authorizer.cached_authorize(scoped)

    assert in_public(_metadata(None)) is None
    assert in_public(None) is None
    assert in_scoped(_metadata(None)) is UNDECIDED  # authorize raises TOKEN_MISSING
    assert in_scoped(_metadata(f"Bearer {token}")) is UNDECIDED  # not verified yet
    principal = await authorizer.authorize(scoped, _metadata(f"Bearer {token}"))
    assert principal is not None
    assert in_scoped(_metadata(f"Bearer {token}")) is principal
    assert in_scoped(_metadata(f"Bearer  {token} ")) is principal  # stripped, as bearer_token does
    assert in_public(_metadata(f"Bearer {token}")) is principal
    for odd in (f"bearer {token}", f"Bearer {token}".encode(), "Bearer ", "Basic abc", "garbage"):
        assert in_scoped(_metadata(odd)) is UNDECIDED  # authorize judges every other form
    assert (await authorizer.authorize(scoped, _metadata(f"bearer {token}"))) is principal

    await verifier.verify(other)
    assert in_scoped(_metadata(f"Bearer {other}")) is UNDECIDED
    with pytest.raises(PermissionDenied) as denied:
        await authorizer.authorize(scoped, _metadata(f"Bearer {other}"))
    assert denied.value.reason == "SCOPE_MISSING"
    assert denied.value.metadata == {"required_scopes": "testing.echo testing.admin"}

    assert verifier.denylist is not None
    verifier.denylist.apply(_event(1, id_events.UserSuspended(user_id="usr_8")))
    assert in_scoped(_metadata(f"Bearer {token}")) is UNDECIDED
    assert in_public(_metadata(f"Bearer {token}")) is UNDECIDED
    with pytest.raises(Unauthenticated) as revoked:
        await authorizer.authorize(scoped, _metadata(f"Bearer {token}"))
    assert revoked.value.reason == "TOKEN_REVOKED"
    assert (await authorizer.authorize(public, _metadata(f"Bearer {token}"))) is None


async def test_cached_authorize_leaves_other_verifiers_to_decide(verifier: TokenVerifier, issuer_key: Forger) -> None:
    """A TokenVerifier subclass or a patched verify decides every call itself."""

    class Strict(TokenVerifier):
        async def verify(self, token: str, *, check_audience: bool = True) -> Principal:
            raise Unauthenticated("never", reason="TOKEN_INVALID")

    rule = options_pb2.AccessRule(scopes=["testing.echo"])
    token = issuer_key.sign(claims(scope="testing.echo"))
    await verifier.verify(token)
    assert Authorizer(verifier).cached_authorize(rule)(_metadata(f"Bearer {token}")) is not UNDECIDED

    strict = Strict("furima-id", AUD, verifier.keys, DenyList())
    await TokenVerifier.verify(strict, token)  # cached by the base implementation
    assert Authorizer(strict).cached_authorize(rule)(_metadata(f"Bearer {token}")) is UNDECIDED

    async def refuse(token: str, *, check_audience: bool = True) -> Principal:
        raise Unauthenticated("patched", reason="TOKEN_INVALID")

    verifier.verify = refuse  # type: ignore[method-assign]
    assert Authorizer(verifier).cached_authorize(rule)(_metadata(f"Bearer {token}")) is UNDECIDED


async def test_cached_authorize_tells_alternating_callers_apart(verifier: TokenVerifier, issuer_key: Forger) -> None:
    """The remembered last header never hands one caller's token to another."""
    authorizer = Authorizer(verifier)
    decide = authorizer.cached_authorize(options_pb2.AccessRule(scopes=["testing.echo"]))
    tokens = [issuer_key.sign(claims(scope="testing.echo", subject=f"usr_{n}")) for n in range(3)]
    for token in tokens:
        await verifier.verify(token)
    for token in [*tokens, *reversed(tokens), tokens[0], tokens[0]]:
        principal = decide(_metadata(f"Bearer {token}"))
        assert isinstance(principal, Principal)
        assert principal.subject == f"usr_{tokens.index(token)}"
    assert decide(_metadata(f"Bearer {tokens[0]}x")) is UNDECIDED  # almost the same header: parsed, not cached
    assert decide(_metadata(f"bearer {tokens[0]}")) is UNDECIDED
    assert decide(_metadata(f"Bearer {tokens[0]}".encode())) is UNDECIDED
