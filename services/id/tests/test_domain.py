"""Pure domain rules: PKCE, scopes, throttle, keys, users, consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.errors import ResourceExhausted, Violations
from services.id.domain import consent, keys, pkce, throttle
from services.id.domain.clients import ClientKind, validate_registration
from services.id.domain.scopes import narrow, parse_scopes, resolve_audience
from services.id.domain.users import normalise_email, validate_sign_up

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_pkce_rfc7636_appendix_b_vector() -> None:
    """The RFC 7636 appendix B verifier maps to its published S256 challenge."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    # The value printed in RFC 7636 appendix B (and what SHA-256 gives).
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.s256_challenge(verifier) == challenge
    assert pkce.verify(verifier, challenge)
    assert not pkce.verify(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuZGwZ8vPuI")


def test_pkce_rejects_bad_verifiers() -> None:
    """Short verifiers, bad characters and wrong verifiers fail."""
    challenge = pkce.s256_challenge("a" * 43)
    assert not pkce.verify("a" * 42, pkce.s256_challenge("a" * 42))
    assert not pkce.verify("a" * 42 + "!", challenge)
    assert not pkce.verify("b" * 43, challenge)
    assert not pkce.is_valid_verifier("a" * 129)


def test_scopes_parse_and_narrow() -> None:
    """Scope strings split on spaces; a request must be a subset; empty means all."""
    allowed = parse_scopes("profile  payments.read")
    assert allowed == {"profile", "payments.read"}
    assert narrow(frozenset(), allowed) == allowed
    assert narrow(frozenset({"profile"}), allowed) == {"profile"}
    assert narrow(frozenset({"tns.review"}), allowed) is None


def test_audience_must_be_known() -> None:
    """Audience narrows to known services and refuses unknown ones."""
    assert resolve_audience(["furima.tns"]) == ("furima.tns",)
    assert resolve_audience([]) is not None
    assert "furima.id" in (resolve_audience([]) or ())
    assert resolve_audience(["evil.example"]) is None


def test_throttle_delay_grows_and_is_capped() -> None:
    """Three failures are free of delay... then 1, 2, 4 s, doubling up to the cap."""
    policy = throttle.ACCOUNT_POLICY
    assert [policy.delay(n) for n in range(1, 7)] == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert policy.delay(50) == 300.0
    assert throttle.SOURCE_POLICY.delay(10_000) == 3600.0


def test_throttle_blocks_during_delay_and_resets_on_success() -> None:
    """An attempt inside the delay raises RESOURCE_EXHAUSTED with retry_after; success clears."""
    state = throttle.ThrottleState("account:a@example.com")
    for _ in range(4):
        state = throttle.record_failure(state, throttle.ACCOUNT_POLICY, T0)
    with pytest.raises(ResourceExhausted) as exc:
        throttle.check(state, T0 + timedelta(seconds=1))
    assert exc.value.retry_after == pytest.approx(1.0)
    throttle.check(state, T0 + timedelta(seconds=2))
    assert throttle.record_success(state).failures == 0


def test_throttle_forgets_old_failures() -> None:
    """Failures older than a day no longer count, so no lockout is permanent."""
    state = throttle.ThrottleState("k", failures=40, last_failure_at=T0)
    later = throttle.record_failure(state, throttle.ACCOUNT_POLICY, T0 + timedelta(days=2))
    assert later.failures == 1
    assert later.blocked_until is None


def test_key_rotation_retires_after_token_ttl() -> None:
    """Rotation makes a new active key; the old one is RETIRING until the max TTL (plus margin) passes."""
    old = keys.generate(T0)
    new, changed = keys.rotate([old], T0 + timedelta(hours=1), timedelta(seconds=900))
    retiring = changed[0]
    rotated_at = T0 + timedelta(hours=1)
    assert retiring.status(rotated_at) is keys.KeyStatus.RETIRING
    retire_at = rotated_at + timedelta(seconds=900) + keys.RETIRE_MARGIN
    assert retiring.is_published(retire_at - timedelta(seconds=1))
    assert retiring.status(retire_at) is keys.KeyStatus.RETIRED
    assert keys.active([retiring, new], rotated_at) == new
    assert keys.public_jwk(new)["crv"] == "P-256"


def test_sign_up_validation_collects_field_violations() -> None:
    """Every bad field is reported at once, by path."""
    v = Violations()
    validate_sign_up(v, "not-an-email", "short", "x" * 101, "JPN")
    assert {i.field for i in v.items} == {"email", "password", "display_name", "region"}


def test_email_normalisation() -> None:
    """E-mails are trimmed and lower-cased."""
    assert normalise_email("  Alice@Example.COM ") == "alice@example.com"


def test_consent_grant_extends_and_revoke_restarts() -> None:
    """Granting again extends the scopes; after revocation a grant starts over."""
    c = consent.grant(None, "usr_1", "p", frozenset({"profile"}), T0)
    c = consent.grant(c, "usr_1", "p", frozenset({"payments.read"}), T0)
    assert c.scopes == {"profile", "payments.read"}
    revoked = consent.revoke(c, T0)
    assert not revoked.is_active
    assert consent.grant(revoked, "usr_1", "p", frozenset({"profile"}), T0).scopes == {"profile"}


@pytest.mark.parametrize(
    ("kind", "scopes", "grants", "bad_field"),
    [
        (ClientKind.THIRD_PARTY, {"profile", "id.users.read"}, ["authorization_code"], "allowed_scopes"),
        (ClientKind.THIRD_PARTY, {"profile", "id.authorize"}, ["authorization_code"], "allowed_scopes"),
        (ClientKind.THIRD_PARTY, {"profile"}, ["client_credentials"], "grant_types[0]"),
        (ClientKind.FIRST_PARTY, {"profile", "id.users.admin"}, ["authorization_code"], "allowed_scopes"),
        (ClientKind.SERVICE, {"profile"}, ["authorization_code"], "grant_types[0]"),
    ],
)
def test_client_kind_limits_scopes_and_grants(
    kind: ClientKind, scopes: set[str], grants: list[str], bad_field: str
) -> None:
    """Partners and apps get only user-delegable scopes and user grants; services only service grants."""
    v = Violations()
    validate_registration(
        v,
        client_id="c-1",
        name="c",
        kind=kind,
        confidential=True,
        allowed_scopes=frozenset(scopes),
        redirect_uris=["https://c.example/cb"],
        grant_types=grants,
    )
    assert bad_field in {i.field for i in v.items}


def test_well_formed_partner_registration_passes() -> None:
    """A partner with user scopes and the code grant is accepted (the rule above is not vacuous)."""
    v = Violations()
    validate_registration(
        v,
        client_id="partner-x",
        name="Partner",
        kind=ClientKind.THIRD_PARTY,
        confidential=True,
        allowed_scopes=frozenset({"profile", "payments.balance.read"}),
        redirect_uris=["https://p.example/cb"],
        grant_types=["authorization_code", "refresh_token"],
    )
    assert v.items == []
