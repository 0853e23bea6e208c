"""Identifiers: ULIDs (sortable by creation time, 26 Crockford base32 characters)."""

from __future__ import annotations

import os
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(prefix: str = "") -> str:
    """A new ULID, optionally prefixed (``"usr_01J..."``) so ids say what they name."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return prefix + "".join(reversed(chars))


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret (client secrets, refresh tokens, codes)."""
    return secrets.token_urlsafe(nbytes)
