"""Where verifiers find the public keys that sign access tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.utils import base64url_decode

log = structlog.get_logger("furima.auth.jwks")


class KeyResolver(Protocol):
    """Finds the public key for a token's ``kid``."""

    async def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key, or None when no such key is (or may be fetched as) known."""
        ...


def jwk_to_public_key(kty: str, crv: str, x: str, y: str) -> ec.EllipticCurvePublicKey:
    """Decode a P-256 JSON Web Key (RFC 7518 section 6.2) into a public key."""
    if kty != "EC" or crv != "P-256":
        raise ValueError(f"unsupported JWK {kty}/{crv}")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(base64url_decode(x), "big"), int.from_bytes(base64url_decode(y), "big"), ec.SECP256R1()
    )
    return numbers.public_key()


class StaticKeys:
    """A fixed set of keys (tests, and the ID service's own view of its key ring)."""

    def __init__(self, keys: dict[str, ec.EllipticCurvePublicKey] | None = None) -> None:
        self.keys = dict(keys or {})

    async def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid`` if present."""
        return self.keys.get(kid)


JwksFetcher = Callable[[], Awaitable[Iterable[tuple[str, ec.EllipticCurvePublicKey]]]]


class JwksCache:
    """Public keys fetched from the ID service, cached, refetched on an unknown ``kid``.

    Refetches are coalesced (one in flight) and rate-limited to one per
    ``min_refresh_interval`` seconds, so a flood of tokens with made-up ``kid`` values
    cannot turn into a flood of calls to the ID service. The whole set is also replaced
    every ``max_age`` seconds, dropping keys that are no longer published.
    """

    def __init__(self, fetch: JwksFetcher, *, min_refresh_interval: float = 5.0, max_age: float = 300.0) -> None:
        self._fetch = fetch
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._min_interval = min_refresh_interval
        self._max_age = max_age
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    async def public_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid``, refreshing the set once if it is unknown.

        A known key is served at once; past ``max_age`` the set is refreshed in the
        background, so a key the ID service stopped publishing stops being trusted.
        """
        key = self._keys.get(kid)
        if key is not None:
            stale = time.monotonic() - self._last_fetch > self._max_age
            if stale and (self._background is None or self._background.done()):
                self._background = asyncio.create_task(self.refresh(only_if_stale=True), name="jwks-refresh")
            return key
        await self.refresh(only_if_stale=True)
        return self._keys.get(kid)

    async def refresh(self, *, only_if_stale: bool = False) -> None:
        """Fetch the current key set (skipped when fetched within the minimum interval)."""
        async with self._lock:
            if only_if_stale and time.monotonic() - self._last_fetch < self._min_interval:
                return
            self._last_fetch = time.monotonic()
            try:
                self._keys = dict(await self._fetch())
            except Exception as exc:  # noqa: BLE001 — keep the old keys; the ID service may be restarting
                log.warning("jwks_fetch_failed", error=str(exc))
