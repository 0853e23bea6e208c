"""PKCE (RFC 7636), S256 only: ``plain`` gives no protection against a leaked code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

METHOD_S256 = "S256"

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# A S256 challenge is an unpadded base64url SHA-256 digest: always 43 characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def is_valid_verifier(verifier: str) -> bool:
    """Whether ``verifier`` has the shape RFC 7636 section 4.1 requires."""
    return bool(_VERIFIER.match(verifier))


def is_valid_challenge(challenge: str) -> bool:
    """Whether ``challenge`` can be an S256 challenge."""
    return bool(_CHALLENGE.match(challenge))


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str, challenge: str) -> bool:
    """Whether ``verifier`` answers the S256 ``challenge`` (constant-time comparison)."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier), challenge)
