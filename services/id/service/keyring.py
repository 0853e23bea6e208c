"""The signing key ring: signs tokens with the ACTIVE key, resolves published keys by kid."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from libs.errors import Unavailable
from services.id.domain import audit, keys
from services.id.domain.keys import SigningKey
from services.id.domain.tokens import ALGORITHM, JWT_TYP
from services.id.service._runtime import Runtime, record
from services.id.store import keys as key_repo

# Other processes may rotate: the cached ring is reloaded after this long, and an
# unknown kid forces a reload at most this often.
_MAX_AGE = 30.0
_MISS_INTERVAL = 1.0


class KeyRing:
    """Cached view of the ``signing_keys`` table. Implements `libs.auth.KeyResolver`."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._keys: list[SigningKey] = []
        self._loaded_at = float("-inf")
        self._reloading: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        """Read every key from the database."""
        async with self._rt.db.read() as conn:
            self._keys = await key_repo.all_keys(conn)
        self._loaded_at = time.monotonic()

    async def _fresh(self) -> list[SigningKey]:
        if time.monotonic() - self._loaded_at > _MAX_AGE:
            await self.reload()
        return self._keys

    async def ensure_active(self) -> SigningKey:
        """Return the ACTIVE key, creating the first one when the ring is empty."""
        await self.reload()
        now = self._rt.clock.now()
        current = keys.active(self._keys, now)
        if current is not None:
            return current
        async with self._rt.db.transaction() as tx:
            existing = await key_repo.all_keys(tx.conn)
            current = keys.active(existing, now)
            if current is None:
                current = keys.generate(now)
                await key_repo.add(tx.conn, current, now)
        await self.reload()
        return current

    async def rotate(self, actor: str) -> SigningKey:
        """Make a new ACTIVE key; the previous one retires once its tokens have expired."""
        now = self._rt.clock.now()
        async with self._rt.db.transaction() as tx:
            existing = await key_repo.all_keys(tx.conn)
            # A retiring key must outlive any token it signed: the max access-token TTL.
            new, changed = keys.rotate(existing, now, self._rt.config.access_token_ttl)
            for key in changed:
                await key_repo.save(tx.conn, key, now)
            await key_repo.add(tx.conn, new, now)
            await record(
                tx,
                audit.event(
                    audit.KEY_ROTATED, new.kid, now, actor=actor, details={"previous": ",".join(k.kid for k in changed)}
                ),
            )
        await self.reload()
        return new

    async def list_keys(self) -> list[SigningKey]:
        """Every key, oldest first (fresh from the database)."""
        await self.reload()
        return list(self._keys)

    async def published(self) -> list[SigningKey]:
        """Return the ACTIVE and RETIRING keys: what verifiers may need."""
        now = self._rt.clock.now()
        return [k for k in await self._fresh() if k.is_published(now)]

    async def jwks(self) -> list[dict[str, str]]:
        """Return the published keys as JWKs."""
        return [keys.public_jwk(k) for k in await self.published()]

    async def public_key(self, kid: str) -> EllipticCurvePublicKey | None:
        """Return the public key of a published ``kid`` (`libs.auth.KeyResolver`)."""
        now = self._rt.clock.now()
        key = self._find(kid)
        if key is None and time.monotonic() - self._loaded_at > _MISS_INTERVAL:
            await self.reload()
            key = self._find(kid)
        if key is None or not key.is_published(now):
            return None
        return key.public_key()

    def _find(self, kid: str) -> SigningKey | None:
        return next((k for k in self._keys if k.kid == kid), None)

    async def sign(self, payload: dict[str, Any]) -> str:
        """Return a compact JWS of ``payload`` with the ACTIVE key.

        No I/O here: callers sign inside their write transaction, where opening another
        would deadlock (SQLite) or take a second pooled connection (PostgreSQL). A stale
        ring is reloaded in the background; the service makes sure a key exists at start.
        """
        if time.monotonic() - self._loaded_at > _MAX_AGE and (self._reloading is None or self._reloading.done()):
            self._reloading = asyncio.create_task(self.reload(), name="keyring-reload")
        key = keys.active(self._keys, self._rt.clock.now())
        if key is None:
            raise Unavailable("no active signing key; the ID service is starting or misconfigured")
        return jwt.encode(payload, key.private_key(), algorithm=ALGORITHM, headers={"kid": key.kid, "typ": JWT_TYP})
