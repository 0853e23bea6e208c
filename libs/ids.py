"""Identifiers: ULIDs (sortable by creation time, 26 Crockford base32 characters)."""

from __future__ import annotations

import os
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of Crockford digits, by the 10-bit number they spell.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_SHIFTS = range(120, -1, -10)


def new_ulid(prefix: str = "") -> str:
    """A new ULID, optionally prefixed (``"usr_01J..."``) so ids say what they name."""
    return prefix + encode_ulid(int(time.time() * 1000), int.from_bytes(os.urandom(10), "big"))


def encode_ulid(millis: int, randomness: int) -> str:
    """The 26 characters of the ULID of a 48-bit time and 80 random bits.

    They are the 130-bit number in Crockford base32, most significant digit first, spelt
    two digits (10 bits) at a time.
    """
    value = (millis << 80) | randomness
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret (client secrets, refresh tokens, codes)."""
    return secrets.token_urlsafe(nbytes)
