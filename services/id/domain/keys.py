"""The ES256 signing key ring: one ACTIVE key, RETIRING keys still published, RETIRED ones gone."""

from __future__ import annotations

import base64
import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from libs.ids import new_ulid


class KeyStatus(enum.StrEnum):
    """A key's stage in its life."""

    ACTIVE = "ACTIVE"
    RETIRING = "RETIRING"
    RETIRED = "RETIRED"


@dataclass(frozen=True)
class SigningKey:
    """A P-256 signing key.

    ``retiring_at`` is when it stopped signing; ``retired_at`` when the last token it signed
    expires and it is unpublished.
    """

    kid: str
    private_pem: str
    created_at: datetime
    retiring_at: datetime | None = None
    retired_at: datetime | None = None

    def status(self, now: datetime) -> KeyStatus:
        """Return the status at ``now``; derived from the timestamps so no job has to flip it."""
        if self.retiring_at is None:
            return KeyStatus.ACTIVE
        if self.retired_at is not None and now >= self.retired_at:
            return KeyStatus.RETIRED
        return KeyStatus.RETIRING

    def is_published(self, now: datetime) -> bool:
        """Whether verifiers may still need the key."""
        return self.status(now) is not KeyStatus.RETIRED

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """Return the private key object."""
        return _load_private(self.private_pem)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """Return the public key object."""
        return self.private_key().public_key()


@lru_cache(maxsize=64)
def _load_private(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("a signing key must be an EC private key")
    return key


def generate(now: datetime) -> SigningKey:
    """Return a new ACTIVE P-256 key."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey(kid=new_ulid("key_"), private_pem=pem, created_at=now)


# Verifiers accept tokens a few seconds past ``exp`` (clock skew), so a retiring key stays
# published a little longer than the longest token it signed.
RETIRE_MARGIN = timedelta(seconds=60)


def rotate(keys: list[SigningKey], now: datetime, max_token_ttl: timedelta) -> tuple[SigningKey, list[SigningKey]]:
    """Return a new ACTIVE key and the keys that changed.

    The old active key starts RETIRING and stays published until every token it may have
    signed has expired.
    """
    new = generate(now)
    changed = [
        dataclasses.replace(k, retiring_at=now, retired_at=now + max_token_ttl + RETIRE_MARGIN)
        for k in keys
        if k.status(now) is KeyStatus.ACTIVE
    ]
    return new, changed


def active(keys: list[SigningKey], now: datetime) -> SigningKey | None:
    """Return the newest ACTIVE key."""
    candidates = [k for k in keys if k.status(now) is KeyStatus.ACTIVE]
    return max(candidates, key=lambda k: (k.created_at, k.kid)) if candidates else None


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def public_jwk(key: SigningKey) -> dict[str, str]:
    """Return the public key as a JWK (RFC 7518 section 6.2)."""
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x),
        "y": _b64(numbers.y),
        "kid": key.kid,
        "use": "sig",
        "alg": "ES256",
    }
